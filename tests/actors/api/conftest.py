"""Fixtures for the HTTP API's tests: a real platform serving its API on a
free loopback port (real clock, compressed), and a real HTTP client."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.platform import Platform, PlatformConfig
from actors.runtime import RealClock
from actors.uaa import UaaConfig

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
PASSWORD = "s3cret-admin"
SPEED = 10.0  # platform seconds per real second: instances start in 0.1 s


@dataclass
class Api:
    """A client of one platform's API, logged in as admin."""

    platform: Platform
    session: aiohttp.ClientSession
    base: str
    token: str = ""
    refresh: str = ""
    calls: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"bearer {self.token}"}

    async def login(self, password: str = PASSWORD) -> aiohttp.ClientResponse:
        response = await self.session.post(
            f"{self.base}/oauth/token",
            data={"grant_type": "password", "username": "admin", "password": password},
            headers={"Authorization": "Basic " + base64.b64encode(b"cf:").decode()},
        )
        if response.status == 200:
            body = await response.json()
            self.token, self.refresh = body["access_token"], body["refresh_token"]
        return response

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        ctype: str | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any, Any]:
        """(status, JSON body or None, headers); `path` may be absolute."""
        url = path if path.startswith("http") else f"{self.base}{path}"
        h = dict(self.auth if auth else {})
        h.update(headers or {})
        data: Any = io.BytesIO(raw) if raw is not None else None
        if body is not None:
            data = json.dumps(body).encode()
            ctype = ctype or "application/json"
        if ctype:
            h["Content-Type"] = ctype
        self.calls.append(f"{method} {url.removeprefix(self.base)}")
        async with self.session.request(method, url, data=data, headers=h) as response:
            text = await response.read()
            parsed = json.loads(text) if text.strip() else None
            return response.status, parsed, response.headers


def app_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def example_files(name: str = "python") -> dict[str, bytes]:
    root = EXAMPLES / name
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.yml"
    }


def resources(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [
        {"path": k, "mode": "644", "checksum": {"value": hashlib.sha1(v).hexdigest()}, "size_in_bytes": len(v)}
        for k, v in files.items()
    ]


def multipart(matched: list[dict[str, Any]], zipped: bytes | None, field_name: str = "bits") -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)  # as cf sends it, bits or not
    form.add_field("resources", json.dumps(matched))
    if zipped is not None:
        form.add_field(field_name, io.BytesIO(zipped), filename="package.zip", content_type="application/octet-stream")
    return form


@pytest.fixture
def api_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MINIFOUNDRY_ADMIN_PASSWORD", PASSWORD)
    return {"data_dir": tmp_path / "data", "api_port": 0, "uaa": UaaConfig()}


@pytest.fixture
async def api(api_config: dict[str, Any]) -> AsyncIterator[Api]:
    platform = Platform(PlatformConfig(**api_config), clock=RealClock(speed=SPEED))
    await platform.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = Api(platform, session, platform.api_url or "")
            assert (await client.login()).status == 200
            yield client
    finally:
        await platform.stop()
