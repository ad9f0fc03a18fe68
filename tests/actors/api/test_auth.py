"""Login and tokens as UAA does them, and every API call guarded by one:
cf v8's and cloudfoundry-client's view of UAA."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import stat
from pathlib import Path

import jwt
import pytest

from actors.uaa import UaaConfig, password_file
from tests.actors.api.conftest import PASSWORD, SPEED

pytestmark = pytest.mark.anyio


def _claims(token: str) -> dict:
    parts = token.split(".")
    assert len(parts) == 3 and all("=" not in p for p in parts), "base64url without padding"
    return json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))


async def test_the_root_links_what_cf_reads_with_absolute_hrefs(api):
    status, root, _ = await api.call("GET", "/", auth=False)
    assert status == 200
    links = root["links"]
    assert links["cloud_controller_v3"]["href"] == f"{api.base}/v3"
    major, minor, _patch = map(int, links["cloud_controller_v3"]["meta"]["version"].split("."))
    assert (major, minor) >= (3, 99)
    for key in ("login", "uaa", "log_cache", "self"):
        assert links[key]["href"] == api.base
    assert links["cloud_controller_v2"]["href"] == f"{api.base}/v2"
    status, prompts, _ = await api.call("GET", "/login", auth=False)
    assert prompts["prompts"] == {"username": ["text", "Email"], "password": ["password", "Password"]}


async def test_a_password_grant_gives_a_jwt_cf_can_read_and_a_refresh_token(api):
    claims = _claims(api.token)
    assert claims["user_name"] == "admin" and claims["origin"] == "uaa"
    assert isinstance(claims["user_id"], str) and isinstance(claims["exp"], int)
    assert claims["exp"] > api.platform.clock.now()
    head = api.token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert header["alg"] == "HS256"
    status, _, _ = await api.call("GET", "/v3/apps")
    assert status == 200


async def test_a_wrong_password_is_refused_as_uaa_refuses_it(api):
    response = await api.login("not-it")
    assert response.status == 401
    assert await response.json() == {"error": "unauthorized", "error_description": "Bad credentials"}
    response = await api.session.post(
        f"{api.base}/oauth/token",
        data={"grant_type": "password", "username": "admin", "password": PASSWORD},
        headers={"Authorization": "Basic " + base64.b64encode(b"other-client:").decode()},
    )
    assert response.status == 401


async def test_a_refresh_token_gives_a_new_access_token_and_is_no_access_token_itself(api):
    refresh = api.refresh
    response = await api.session.post(
        f"{api.base}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers={"Authorization": "Basic Y2Y6"},
    )
    assert response.status == 200
    body = await response.json()
    assert body["token_type"] == "bearer" and body["refresh_token"]
    api.token = body["access_token"]
    assert (await api.call("GET", "/v3/apps"))[0] == 200
    api.token = refresh  # a refresh token does not open the API
    status, error, _ = await api.call("GET", "/v3/apps")
    assert (status, error["errors"][0]["title"]) == (401, "CF-InvalidAuthToken")
    response = await api.session.post(
        f"{api.base}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["access_token"]},
        headers={"Authorization": "Basic Y2Y6"},
    )
    assert response.status == 401 and (await response.json())["error"] == "invalid_token"


@pytest.mark.parametrize("path", ["/v3/apps", "/v2/apps", "/api/v1/read/some-app", "/v3/organizations"])
async def test_no_token_is_not_authenticated_and_a_bad_one_is_an_invalid_auth_token(api, path):
    status, error, _ = await api.call("GET", path, auth=False)
    assert status == 401
    if path.startswith("/v2"):
        assert (error["code"], error["error_code"]) == (10002, "CF-NotAuthenticated")
    else:
        assert error == {"errors": [{"detail": "Authentication error", "title": "CF-NotAuthenticated", "code": 10002}]}
    status, error, _ = await api.call("GET", path, auth=False, headers={"Authorization": "bearer not.a.token"})
    assert status == 401
    title = error["error_code"] if path.startswith("/v2") else error["errors"][0]["title"]
    assert title == "CF-InvalidAuthToken"


def _forge(claims: dict, key: bytes | str, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


async def test_forged_tampered_and_unsigned_tokens_are_refused(api):
    claims = _claims(api.token)
    forged = _forge(claims, b"k" * 32)
    head, _payload, sig = api.token.split(".")
    more = dict(claims, user_name="root")
    tampered = ".".join([head, base64.urlsafe_b64encode(json.dumps(more).encode()).rstrip(b"=").decode(), sig])
    unsigned_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = f"{unsigned_head}.{api.token.split('.')[1]}."
    for token in (forged, tampered, unsigned, api.token + "x"):
        status, error, _ = await api.call("GET", "/v3/apps", auth=False, headers={"Authorization": f"bearer {token}"})
        assert (status, error["errors"][0]["code"]) == (401, 1000), token


@pytest.fixture
def short_tokens(api_config):
    api_config["uaa"] = UaaConfig(access_token_seconds=2)
    return api_config


async def test_an_expired_token_is_refused(short_tokens, api):
    assert (await api.call("GET", "/v3/apps"))[0] == 200
    await asyncio.sleep(2.5 / SPEED)  # 2.5 platform seconds
    status, error, _ = await api.call("GET", "/v3/apps")
    assert (status, error["errors"][0]["title"]) == (401, "CF-InvalidAuthToken")


def _listening(port: int) -> list[str]:
    """The local addresses of the sockets listening on `port` (from /proc)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # LISTEN
                found.append(address)
    return found


async def test_the_api_listens_on_loopback_only(api):
    port = api.platform.api.port
    assert api.base == f"http://127.0.0.1:{port}"
    assert _listening(port) == ["0100007F"]  # 127.0.0.1, and nothing else (not 0.0.0.0, not ::)
    others = {ip for *_, (ip, *_rest) in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for ip in sorted(others - {"127.0.0.1", "127.0.1.1"}):
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((ip, port)) != 0, f"the API answers on {ip}"


async def test_keys_and_a_generated_password_are_kept_owner_only(tmp_path, monkeypatch):
    from actors.platform import Platform, PlatformConfig
    from actors.runtime import RealClock

    monkeypatch.delenv("MINIFOUNDRY_ADMIN_PASSWORD", raising=False)
    data = tmp_path / "data"
    async with Platform(PlatformConfig(data_dir=data, api_port=0), clock=RealClock()) as platform:
        generated = password_file(data / "uaa")
        password = generated.read_text().strip()
        assert len(password) >= 16
        for path in (generated, data / "uaa" / "signing.key", data / "uaa" / "users.json"):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        assert PASSWORD not in (data / "uaa" / "users.json").read_text()
        assert password not in (data / "uaa" / "users.json").read_text()
        import aiohttp

        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{platform.api_url}/oauth/token",
                data={"grant_type": "password", "username": "admin", "password": password},
                headers={"Authorization": "Basic Y2Y6"},
            )
            assert response.status == 200
