"""The platform as a user runs it: a background process behind Cloud
Controller's API, measured from outside.

    python run.py bench api [--apps 20] [--requests 2000] [--pushes 16] [--concurrency 8] [--json [PATH]]

One run starts a platform with `up` on a fresh data dir (real clock, the
configuration `up` gives a user), then measures, side by side:

1. `GET /v3/apps` requests per second (with --apps apps pushed, --concurrency
   requests in flight), against `GET /` (no token, no actor: the HTTP floor);
2. pushes per second through the API: cf v8's call sequence (apply_manifest,
   resource matches, package, upload, build, droplet, restart, stats until
   an instance is RUNNING), --concurrency at a time;
3. the wall time of a one-shot command (`python run.py apps`) against the
   running platform, p50 of --oneshots runs, against `python -c pass`.

Targets are reported as PASS/MISS (the issue's: one-shot p50 under 0.5 s);
this is a report, not an assertion. The platform is stopped with `down`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-admin"
ONESHOT_TARGET = 0.5


def _run_py(data_dir: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MINIFOUNDRY_ADMIN_PASSWORD=PASSWORD)
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data_dir), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def _app_zip() -> tuple[bytes, list[dict[str, Any]]]:
    src = ROOT / "examples" / "python"
    files = {str(p.relative_to(src)): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
    files.pop("manifest.yml", None)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    resources = [
        {"path": k, "mode": "644", "checksum": {"value": hashlib.sha1(v).hexdigest()}, "size_in_bytes": len(v)}
        for k, v in files.items()
    ]
    return buf.getvalue(), resources


class Client:
    def __init__(self, session: Any, base: str) -> None:
        self.session = session
        self.base = base
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        async with self.session.post(
            f"{self.base}/oauth/token",
            data={"grant_type": "password", "username": "admin", "password": PASSWORD},
            headers={"Authorization": "Basic " + base64.b64encode(b"cf:").decode()},
        ) as r:
            body = await r.json()
        self.headers = {"Authorization": f"bearer {body['access_token']}"}

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        url = path if path.startswith("http") else f"{self.base}{path}"
        async with self.session.request(method, url, headers={**self.headers, **kw.pop("headers", {})}, **kw) as r:
            raw = await r.read()
            return r.status, (json.loads(raw) if raw.strip() else None), r.headers

    async def poll(self, path: str, done: Any, within: float = 120.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            status, body, _ = await self.call("GET", path)
            if status == 200 and done(body):
                return body
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} never got there: {body}")
            await asyncio.sleep(0.02)

    async def push(self, space: str, name: str, zipped: bytes, resources: list[dict[str, Any]]) -> None:
        import aiohttp

        manifest = f"applications:\n- name: {name}\n  memory: 64M\n  default-route: true\n".encode()
        y = {"Content-Type": "application/x-yaml"}
        _, _, h = await self.call("POST", f"/v3/spaces/{space}/actions/apply_manifest", data=manifest, headers=y)
        await self.poll(h["Location"], lambda j: j["state"] != "PROCESSING")
        _, apps, _ = await self.call("GET", f"/v3/apps?names={name}&space_guids={space}")
        app = apps["resources"][0]["guid"]
        _, matched, _ = await self.call("POST", "/v3/resource_matches", json={"resources": resources})
        _, package, _ = await self.call(
            "POST", "/v3/packages", json={"type": "bits", "relationships": {"app": {"data": {"guid": app}}}}
        )
        form = aiohttp.FormData(default_to_multipart=True)
        hit = {m["checksum"]["value"] for m in matched["resources"]}
        form.add_field("resources", json.dumps(matched["resources"]))
        if len(hit) < len(resources):
            form.add_field("bits", io.BytesIO(zipped), filename="package.zip", content_type="application/octet-stream")
        status, _, _ = await self.call("POST", f"/v3/packages/{package['guid']}/upload", data=form)
        assert status == 200
        _, build, _ = await self.call("POST", "/v3/builds", json={"package": {"guid": package["guid"]}})
        build = await self.poll(f"/v3/builds/{build['guid']}", lambda b: b["state"] != "STAGING")
        assert build["state"] == "STAGED", build
        droplet = build["droplet"]["guid"]
        await self.call("GET", f"/v3/droplets/{droplet}")
        await self.call("PATCH", f"/v3/apps/{app}/relationships/current_droplet", json={"data": {"guid": droplet}})
        await self.call("POST", f"/v3/apps/{app}/actions/restart")
        await self.poll(f"/v3/processes/{app}/stats", lambda s: any(i["state"] == "RUNNING" for i in s["resources"]))


async def _rate(client: Client, path: str, requests: int, concurrency: int, *, auth: bool = True) -> float:
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            url = f"{client.base}{path}"
            async with client.session.get(url, headers=client.headers if auth else {}) as r:
                await r.read()
                assert r.status == 200, r.status

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - t)


async def _measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    zipped, resources = _app_zip()
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, base)
        await client.login()
        _, spaces, _ = await client.call("GET", "/v3/spaces")
        space = spaces["resources"][0]["guid"]

        names = iter(f"bench-{i}" for i in range(args.apps + args.pushes))
        sem = asyncio.Semaphore(args.concurrency)

        async def one(name: str) -> float:
            async with sem:
                t0 = time.perf_counter()
                await client.push(space, name, zipped, resources)
                return time.perf_counter() - t0

        # The apps the listing shows (pushed first, not timed).
        await asyncio.gather(*(one(next(names)) for _ in range(args.apps)))
        t = time.perf_counter()
        durations = await asyncio.gather(*(one(next(names)) for _ in range(args.pushes)))
        push_wall = time.perf_counter() - t

        root_rate = await _rate(client, "/", args.requests, args.concurrency, auth=False)
        apps_rate = await _rate(client, "/v3/apps?per_page=5000", args.requests, args.concurrency)
    return {
        "apps_listed": args.apps + args.pushes,
        "get_root_per_s": round(root_rate, 1),
        "get_v3_apps_per_s": round(apps_rate, 1),
        "pushes": args.pushes,
        "pushes_per_s": round(args.pushes / push_wall, 3),
        "push_p50_s": round(statistics.median(durations), 3),
        "push_max_s": round(max(durations), 3),
    }


def _oneshot(data_dir: Path, runs: int) -> dict[str, float]:
    def timed(cmd: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, cwd=ROOT)
        return time.perf_counter() - t

    run = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data_dir), "apps"]
    bare = [sys.executable, "-c", "pass"]
    timed(run)  # warm: bytecode and the page cache
    ours = [timed(run) for _ in range(runs)]
    floor = [timed(bare) for _ in range(runs)]
    return {
        "oneshot_p50_s": round(statistics.median(ours), 4),
        "oneshot_max_s": round(max(ours), 4),
        "python_p50_s": round(statistics.median(floor), 4),
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import add_json_option, at_least, emit, loop_name

    p = argparse.ArgumentParser(prog="run.py bench api", description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", type=int, default=20, help="apps pushed before the listing is timed (default 20)")
    p.add_argument("--requests", type=int, default=2000, help="GET requests per listing measurement (default 2000)")
    p.add_argument("--pushes", type=int, default=16, help="pushes timed through the API (default 16)")
    p.add_argument("--concurrency", type=int, default=8, help="requests or pushes in flight (default 8)")
    p.add_argument("--oneshots", type=int, default=20, help="one-shot commands timed (default 20)")
    p.add_argument("--cells", type=at_least(1), default=4)
    add_json_option(p)
    args = p.parse_args(argv)
    for name in ("apps", "requests", "pushes", "concurrency", "oneshots", "cells"):
        if getattr(args, name) < (0 if name == "apps" else 1):
            p.error(f"--{name} must be at least {0 if name == 'apps' else 1}")
    with tempfile.TemporaryDirectory(prefix="mf-bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        _run_py(data_dir, "--cells", str(args.cells), "--api-port", "0", "up")
        try:
            state = json.loads((data_dir / "platform.json").read_text())
            figures = asyncio.run(_measure(state["api_url"], args))
            figures.update(_oneshot(data_dir, args.oneshots))
        finally:
            _run_py(data_dir, "down", check=False)
    figures["config"] = {
        "cells": args.cells,
        "concurrency": args.concurrency,
        "clock": "real, speed 1 (as up runs it)",
        "python": sys.version.split()[0],
        "loop": loop_name(),
    }
    # With --json on stdout the figures are the only thing there.
    out = sys.stderr if args.json == "-" else sys.stdout
    ratio = figures["get_v3_apps_per_s"] / figures["get_root_per_s"]
    passed = figures["oneshot_p50_s"] < ONESHOT_TARGET
    print(f"GET /v3/apps ({figures['apps_listed']} apps): {figures['get_v3_apps_per_s']:.0f} req/s", end="", file=out)
    print(f"  (GET /: {figures['get_root_per_s']:.0f} req/s; ratio {ratio:.2f})", file=out)
    print(
        f"pushes through the API: {figures['pushes_per_s']:.2f}/s ({figures['pushes']} pushes, "
        f"{args.concurrency} at a time; each p50 {figures['push_p50_s']:.2f} s, max {figures['push_max_s']:.2f} s)",
        file=out,
    )
    print(
        f"one-shot 'apps' against the running platform: p50 {figures['oneshot_p50_s'] * 1000:.0f} ms "
        f"(python -c pass: {figures['python_p50_s'] * 1000:.0f} ms; "
        f"{figures['oneshot_p50_s'] / figures['python_p50_s']:.1f}x) "
        f"target < {ONESHOT_TARGET * 1000:.0f} ms: {'PASS' if passed else 'MISS'}",
        file=out,
    )
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
