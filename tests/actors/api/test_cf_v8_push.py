"""cf v8's own push, call by call, with plain HTTP (the order and shapes of
DESIGN.md section 8): login, targeting, manifest diff and apply, resource
matches, package and upload, build with staging logs from log-cache,
droplet, current droplet, restart, stats until RUNNING, the summary, then
`logs --recent`, `scale`, `apps` and `delete`."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.actors.api.conftest import app_zip, example_files, multipart, resources

pytestmark = pytest.mark.anyio

GO_ZERO_TIME = -6795364578871345152  # time.Time{} in ns, as cf v8 sends it


async def _poll(api, path, done, *, every=0.05, within=30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        status, body, _ = await api.call("GET", path)
        assert status == 200, body
        if done(body):
            return body
        assert loop.time() < deadline, f"{path} never reached the state: {body}"
        await asyncio.sleep(every)


async def _target(api):
    status, orgs, _ = await api.call("GET", "/v3/organizations?order_by=name")
    assert status == 200 and len(orgs["resources"]) == 1
    org = orgs["resources"][0]
    status, spaces, _ = await api.call("GET", f"/v3/spaces?order_by=name&organization_guids={org['guid']}")
    assert status == 200 and len(spaces["resources"]) == 1
    return org, spaces["resources"][0]


async def _push(api, space, name="hello", files=None, manifest=None):
    """cf v8's push of one app; returns (app guid, staging log lines seen)."""
    files = files or example_files("python")
    manifest = manifest or f"applications:\n- name: {name}\n  memory: 64M\n  instances: 2\n  default-route: true\n"
    y = "application/x-yaml"
    status, diff, _ = await api.call(
        "POST", f"/v3/spaces/{space['guid']}/manifest_diff", raw=manifest.encode(), ctype=y
    )
    assert status == 201 and isinstance(diff["diff"], list)
    status, _, headers = await api.call(
        "POST", f"/v3/spaces/{space['guid']}/actions/apply_manifest", raw=manifest.encode(), ctype=y
    )
    assert status == 202
    location = headers["Location"]
    assert location.startswith(api.base + "/v3/jobs/")
    job = await _poll(api, location, lambda j: j["state"] in ("COMPLETE", "FAILED"))
    assert job["state"] == "COMPLETE", job
    status, apps, _ = await api.call("GET", f"/v3/apps?names={name}&space_guids={space['guid']}")
    [app] = apps["resources"]
    assert app["lifecycle"]["type"] == "buildpack"

    status, matches, _ = await api.call("POST", "/v3/resource_matches", body={"resources": resources(files)})
    assert status == 201
    matched = matches["resources"]
    assert all(int(m["mode"], 8) >= 0 for m in matched)
    hit = {m["checksum"]["value"] for m in matched}
    status, package, _ = await api.call(
        "POST", "/v3/packages", body={"type": "bits", "relationships": {"app": {"data": {"guid": app["guid"]}}}}
    )
    assert (status, package["state"]) == (201, "AWAITING_UPLOAD")
    unmatched = {k: v for k, v in files.items() if resources({k: v})[0]["checksum"]["value"] not in hit}
    form = multipart(matched, app_zip(unmatched) if unmatched else None)
    async with api.session.post(f"{api.base}/v3/packages/{package['guid']}/upload", data=form, headers=api.auth) as r:
        assert r.status == 200, await r.text()
        uploaded = await r.json()
    if uploaded["state"] != "READY":
        await _poll(api, f"/v3/packages/{package['guid']}", lambda p: p["state"] in ("READY", "FAILED", "EXPIRED"))

    status, info, _ = await api.call("GET", "/api/v1/info")
    assert status == 200 and info["version"].count(".") == 2
    status, build, _ = await api.call("POST", "/v3/builds", body={"package": {"guid": package["guid"]}})
    assert (status, build["state"]) == (201, "STAGING")
    staging_lines = []
    since = GO_ZERO_TIME
    while True:  # cf's log walk and build poll, interleaved
        status, logs, _ = await api.call("GET", f"/api/v1/read/{app['guid']}?envelope_types=LOG&start_time={since}")
        assert status == 200 and set(logs) == {"envelopes"}
        for env in logs["envelopes"]["batch"]:
            since = int(env["timestamp"]) + 1
            if env["tags"]["source_type"] == "STG":
                staging_lines.append(base64.b64decode(env["log"]["payload"]).decode())
        status, build, _ = await api.call("GET", f"/v3/builds/{build['guid']}")
        if build["state"] != "STAGING":
            break
        await asyncio.sleep(0.05)
    assert build["state"] == "STAGED", build["error"]
    status, droplet, _ = await api.call("GET", f"/v3/droplets/{build['droplet']['guid']}")
    assert (status, droplet["state"]) == (200, "STAGED")
    status, rel, _ = await api.call(
        "PATCH", f"/v3/apps/{app['guid']}/relationships/current_droplet", body={"data": {"guid": droplet["guid"]}}
    )
    assert (status, rel["data"]["guid"]) == (200, droplet["guid"])
    status, restarted, _ = await api.call("POST", f"/v3/apps/{app['guid']}/actions/restart")
    assert (status, restarted["state"]) == (200, "STARTED")
    status, processes, _ = await api.call("GET", f"/v3/apps/{app['guid']}/processes")
    [process] = processes["resources"]
    stats = await _poll(
        api, f"/v3/processes/{process['guid']}/stats", lambda s: any(i["state"] == "RUNNING" for i in s["resources"])
    )
    for instance in stats["resources"]:
        if instance["state"] != "DOWN":
            assert instance["mem_quota"] >= 0 and instance["usage"]["mem"] >= 0 and isinstance(instance["uptime"], int)
    # The summary cf prints.
    for path in (
        f"/v3/processes/{process['guid']}",
        f"/v3/processes/{process['guid']}/sidecars",
        f"/v3/apps/{app['guid']}/routes",
        f"/v3/apps/{app['guid']}/droplets/current",
        f"/v3/deployments?app_guids={app['guid']}&order_by=-created_at&page=1&per_page=1&status_values=ACTIVE",
    ):
        status, _, _ = await api.call("GET", path)
        assert status == 200, path
    return app["guid"], staging_lines


async def test_cf_v8_push_sequence_runs_the_app_and_shows_its_staging_logs(api):
    _, space = await _target(api)
    guid, staging_lines = await _push(api, space)
    assert any("python" in line.lower() for line in staging_lines), staging_lines
    status, routes, _ = await api.call("GET", f"/v3/apps/{guid}/routes")
    assert [r["url"] for r in routes["resources"]] == ["hello.apps.internal"]
    status, stats, _ = await api.call("GET", f"/v3/processes/{guid}/stats")
    assert [i["index"] for i in stats["resources"]] == [0, 1]


async def test_a_push_through_the_api_is_traced_with_the_client_as_the_cli_participant(api):
    _, space = await _target(api)
    await _push(api, space)
    lines: list[str] = []
    outcome = await api.platform.run_command(["trace", "hello"], lines.append)
    text = "\n".join(lines)
    assert outcome.exit_code == 0, text
    assert "    participant cli as cli" in lines
    for arrow in (
        "cli->>cloud_controller: 2. POST /v3/spaces/{guid}/actions/apply_manifest",
        "cli->>cloud_controller: 5. POST /v3/packages/{guid}/upload",  # its band: the package stored
        "cli->>cloud_controller: 6. POST /v3/builds",
        "cli->>cloud_controller: 11. POST /v3/apps/{guid}/actions/restart",
        "cloud_controller->>blobstore: 5. blob.store_package",
        "cloud_controller->>bbs: 6. DesireTask",
    ):
        assert f"    {arrow}" in lines, arrow


async def test_a_second_push_of_the_same_bits_matches_every_file_and_uploads_nothing(api):
    _, space = await _target(api)
    await _push(api, space)
    files = example_files("python")
    status, matches, _ = await api.call("POST", "/v3/resource_matches", body={"resources": resources(files)})
    assert {m["path"] for m in matches["resources"]} == {k for k, v in files.items() if v}
    guid, _ = await _push(api, space)
    status, app, _ = await api.call("GET", f"/v3/apps/{guid}")
    assert app["state"] == "STARTED"


async def test_logs_recent_scale_apps_and_delete_as_cf_v8_calls_them(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    status, logs, _ = await api.call(
        "GET", f"/api/v1/read/{guid}?descending=true&envelope_types=LOG&limit=1000&start_time={GO_ZERO_TIME}"
    )
    batch = logs["envelopes"]["batch"]
    stamps = [int(e["timestamp"]) for e in batch]
    assert stamps == sorted(stamps, reverse=True) and len(batch) <= 1000
    kinds = {e["tags"]["source_type"] for e in batch}
    assert {"API", "STG", "CELL"} <= kinds
    assert all(set(e) == {"timestamp", "source_id", "instance_id", "deprecated_tags", "tags", "log"} for e in batch)
    status, limited, _ = await api.call("GET", f"/api/v1/read/{guid}?limit=2&start_time={GO_ZERO_TIME}")
    assert len(limited["envelopes"]["batch"]) == 2
    status, _, _ = await api.call("GET", f"/api/v1/read/{guid}?limit=1001")
    assert status == 400

    status, process, _ = await api.call("POST", f"/v3/apps/{guid}/processes/web/actions/scale", body={"instances": 3})
    assert (status, process["instances"]) == (202, 3)
    await _poll(
        api, f"/v3/processes/{guid}/stats", lambda s: [i["state"] for i in s["resources"]].count("RUNNING") == 3
    )

    status, apps, _ = await api.call("GET", f"/v3/apps?order_by=name&per_page=5000&space_guids={space['guid']}")
    assert [a["name"] for a in apps["resources"]] == ["hello"]
    status, processes, _ = await api.call("GET", f"/v3/processes?app_guids={guid}")
    assert [p["instances"] for p in processes["resources"]] == [3]
    status, routes, _ = await api.call("GET", f"/v3/routes?app_guids={guid}")
    assert routes["resources"][0]["destinations"][0]["app"]["guid"] == guid

    status, events, _ = await api.call("GET", f"/v3/audit_events?order_by=-created_at&page=1&target_guids={guid}")
    types = [e["type"] for e in events["resources"]]
    assert "audit.app.process.scale" in types and "audit.app.create" in types

    status, _, headers = await api.call("DELETE", f"/v3/apps/{guid}")
    assert status == 202
    job = await _poll(api, headers["Location"], lambda j: j["state"] != "PROCESSING")
    assert job["state"] == "COMPLETE"
    status, error, _ = await api.call("GET", f"/v3/apps/{guid}")
    assert (status, error) == (
        404,
        {"errors": [{"detail": "App not found", "title": "CF-ResourceNotFound", "code": 10010}]},
    )
    status, apps, _ = await api.call("GET", f"/v3/apps?space_guids={space['guid']}")
    assert apps["resources"] == []


async def test_lists_page_with_absolute_next_links(api):
    _, space = await _target(api)
    for name in ("a1", "a2", "a3"):
        manifest = f"applications:\n- name: {name}\n  memory: 64M\n"
        status, _, _ = await api.call(
            "POST",
            f"/v3/spaces/{space['guid']}/actions/apply_manifest",
            raw=manifest.encode(),
            ctype="application/x-yaml",
        )
        assert status == 202
    seen = []
    url = "/v3/apps?order_by=name&per_page=2"
    while url:
        status, page, _ = await api.call("GET", url)
        seen += [a["name"] for a in page["resources"]]
        nxt = page["pagination"]["next"]
        url = nxt["href"] if nxt else None
        if url:
            assert url.startswith(api.base)
    assert seen == ["a1", "a2", "a3"]
    assert page["pagination"]["total_results"] == 3 and page["pagination"]["total_pages"] == 2
