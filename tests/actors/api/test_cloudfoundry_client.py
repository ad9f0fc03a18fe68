"""The one Cloud Foundry client on PyPI, cloudfoundry-client, against the
platform's API: login, a refused password, PushOperation of an app directory
with a manifest, the app in V2 and V3 listings with its instances RUNNING,
scale, restart and delete. It is synchronous (requests): it runs in a thread
while the platform serves on the test's loop."""

from __future__ import annotations

import asyncio
import shutil
import time
from http import HTTPStatus
from pathlib import Path

import pytest

from tests.actors.api.conftest import EXAMPLES, PASSWORD

pytestmark = pytest.mark.anyio


def _wait(check, within=30.0):
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def _session(base: str, tmp: Path) -> dict:
    from cloudfoundry_client.client import CloudFoundryClient
    from cloudfoundry_client.errors import InvalidStatusCode
    from cloudfoundry_client.operations.push.push import PushOperation
    from oauth2_client.credentials_manager import OAuthError

    seen: dict = {}
    with pytest.raises(OAuthError):
        CloudFoundryClient(base, verify=False).init_with_user_credentials("admin", "wrong")
    client = CloudFoundryClient(base, verify=False)
    client.init_with_user_credentials("admin", PASSWORD)
    space = client.v2.spaces.get_first(name="dev")
    space_guid = space["metadata"]["guid"]

    project = tmp / "project"
    shutil.copytree(EXAMPLES / "python", project / "app")
    (project / "manifest.yml").write_text(
        "applications:\n"
        "- name: my-app\n"
        "  memory: 128M\n"
        "  disk_quota: 512M\n"
        "  instances: 2\n"
        "  path: ./app\n"
        "  env: {FOO: bar, NUM: 3}\n"
    )
    PushOperation(client).push(space_guid, str(project / "manifest.yml"))  # waits for every instance RUNNING

    seen["v2_names"] = [a["entity"]["name"] for a in client.v2.apps.list(space_guid=space_guid)]
    app = client.v2.apps.get_first(name="my-app", space_guid=space_guid)
    guid = app["metadata"]["guid"]
    seen["env"] = app["entity"]["environment_json"]
    seen["v3"] = [(a["name"], a["guid"]) for a in client.v3.apps.list(names=["my-app"], space_guids=[space_guid])]
    seen["instances"] = client.v2.apps.get_instances(guid)
    seen["routes"] = [r["entity"]["host"] for r in client.v2.apps.list_routes(guid)]

    scaled = client.v2.apps.update(guid, instances=3)
    seen["scaled"] = scaled["entity"]["instances"]
    seen["after_scale"] = _wait(
        lambda: (
            (i := client.v2.apps.get_instances(guid)) and sum(v["state"] == "RUNNING" for v in i.values()) == 3 and i
        )
    )
    seen["summary_instances"] = client.v2.apps.get_summary(guid)["instances"]
    restarted = client.v3.apps.restart(guid)
    seen["restarted"] = restarted["state"]

    client.v3.apps.remove(guid, asynchronous=False)
    with pytest.raises(InvalidStatusCode) as gone:
        client.v2.apps.get(guid)
    seen["gone"] = gone.value.status_code
    seen["v2_after"] = list(client.v2.apps.list(space_guid=space_guid))
    return seen


async def test_cloudfoundry_client_logs_in_pushes_lists_scales_restarts_and_deletes(api, tmp_path):
    seen = await asyncio.to_thread(_session, api.base, tmp_path)
    assert seen["v2_names"] == ["my-app"]
    assert seen["env"] == {"FOO": "bar", "NUM": "3"}
    [(name, guid)] = seen["v3"]
    assert name == "my-app"
    assert sorted(seen["instances"]) == ["0", "1"] and {v["state"] for v in seen["instances"].values()} == {"RUNNING"}
    assert seen["routes"] == ["my-app"]
    assert seen["scaled"] == 3 and seen["summary_instances"] == 3
    assert seen["restarted"] == "STARTED"
    assert seen["gone"] == HTTPStatus.NOT_FOUND
    assert seen["v2_after"] == []


def _push_failing(base: str, tmp: Path) -> tuple[float, BaseException | None, dict]:
    from cloudfoundry_client.client import CloudFoundryClient
    from cloudfoundry_client.operations.push.push import PushOperation

    client = CloudFoundryClient(base, verify=False)
    client.init_with_user_credentials("admin", PASSWORD)
    space_guid = client.v2.spaces.get_first(name="dev")["metadata"]["guid"]
    project = tmp / "failing"
    shutil.copytree(EXAMPLES / "undetectable", project / "app")
    (project / "manifest.yml").write_text("applications:\n- name: nope\n  memory: 64M\n  path: ./app\n")
    began = time.monotonic()
    raised = None
    try:
        PushOperation(client).push(space_guid, str(project / "manifest.yml"))
    except Exception as exc:
        raised = exc
    app = client.v2.apps.get_first(name="nope", space_guid=space_guid)
    return time.monotonic() - began, raised, app["entity"]


async def test_a_push_whose_staging_fails_fails_at_once_in_the_library_with_the_reason(api, tmp_path):
    took, raised, entity = await asyncio.to_thread(_push_failing, api.base, tmp_path)
    # V2 says why, as Cloud Controller does: the library stops waiting.
    assert raised is not None and "NoAppDetectedError" in str(raised), raised
    assert took < 60, took
    assert entity["package_state"] == "FAILED"
    assert entity["staging_failed_reason"] == "NoAppDetectedError"
