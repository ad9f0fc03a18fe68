"""The calls cf v8 makes around a push: `start`, `restart` and `restage` ask
for the app's newest package and whether it has staged; `droplets`, `rename`,
`delete-route` and `delete -r`. And the bodies Cloud Controller checks
before it changes anything: wrongly typed JSON, unknown fields, Docker,
reserved environment variables, empty uploads, resources that are not what
the request says."""

from __future__ import annotations

import pytest

from tests.actors.api.conftest import app_zip, example_files, resources
from tests.actors.api.test_bad_input import _app, _error, _package, _space, _stored, _upload
from tests.actors.api.test_cf_v8_push import _poll, _push, _target

pytestmark = pytest.mark.anyio


async def _newest_unstaged_package(api, app_guid: str) -> str | None:
    """cf v8's GetUnstagedNewestPackageGUID, call for call."""
    status, packages, _ = await api.call(
        "GET", f"/v3/packages?app_guids={app_guid}&order_by=-created_at&per_page=1&page=1"
    )
    assert status == 200, packages
    if not packages["resources"]:
        return None
    newest = packages["resources"][0]["guid"]
    status, droplets, _ = await api.call("GET", f"/v3/packages/{newest}/droplets?states=STAGED&per_page=1")
    assert status == 200, droplets
    return None if droplets["resources"] else newest


async def test_start_and_restart_find_the_newest_package_and_whether_it_staged(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    # The pushed package staged: nothing to stage before a restart.
    assert await _newest_unstaged_package(api, guid) is None
    _, first, _ = await api.call("GET", f"/v3/packages?app_guids={guid}")
    [staged] = first["resources"]
    # A newer package, not staged yet: cf stages it before starting.
    package = await _package(api, guid)
    files = example_files("python")
    status, body = await _upload(api, package, app_zip(files))
    assert status == 200, body
    assert await _newest_unstaged_package(api, guid) == package
    _, both, _ = await api.call("GET", f"/v3/packages?app_guids={guid}&order_by=-created_at")
    assert [p["guid"] for p in both["resources"]] == [package, staged["guid"]]
    _, oldest_first, _ = await api.call("GET", f"/v3/packages?app_guids={guid}")
    assert [p["guid"] for p in oldest_first["resources"]] == [staged["guid"], package]
    _, ready, _ = await api.call("GET", f"/v3/packages?app_guids={guid}&states=READY&guids={package}")
    assert [p["guid"] for p in ready["resources"]] == [package]
    status, build, _ = await api.call("POST", "/v3/builds", body={"package": {"guid": package}})
    assert status == 201, build
    for _ in range(600):
        if await _newest_unstaged_package(api, guid) is None:
            break
    else:
        raise AssertionError("the new package never staged")
    # `cf droplets`: every droplet of the app, by app, package and state.
    _, droplets, _ = await api.call("GET", f"/v3/droplets?app_guids={guid}&states=STAGED")
    assert len(droplets["resources"]) == 2
    _, of_package, _ = await api.call("GET", f"/v3/packages/{package}/droplets")
    [droplet] = of_package["resources"]
    _, by_package, _ = await api.call("GET", f"/v3/droplets?package_guids={package}")
    assert [d["guid"] for d in by_package["resources"]] == [droplet["guid"]]
    _, none, _ = await api.call("GET", "/v3/droplets?app_guids=nope")
    assert none["resources"] == []
    status, body, _ = await api.call("GET", "/v3/packages/nope/droplets")
    assert (status, body["errors"][0]["detail"]) == (404, "Package not found")
    status, body, _ = await api.call("GET", "/v3/packages?order_by=size")
    assert (status, _error(body)) == (400, (10005, "CF-BadQueryParameter"))


async def test_rename_changes_the_name_only_and_refuses_a_taken_or_bad_one(api):
    guid = await _app(api, "first")
    other = await _app(api, "second")
    status, app, _ = await api.call("PATCH", f"/v3/apps/{guid}", body={"name": "renamed"})
    assert (status, app["name"], app["guid"]) == (200, "renamed", guid)
    _, apps, _ = await api.call("GET", "/v3/apps?names=first,renamed")
    assert [a["guid"] for a in apps["resources"]] == [guid]
    _, events, _ = await api.call("GET", f"/v3/audit_events?target_guids={guid}&types=audit.app.update")
    assert events["resources"][-1]["data"]["request"] == {"name": "renamed"}
    before = await _stored(api.platform)
    for body, status_error in (
        ({"name": "second"}, (422, (10016, "CF-UniquenessError"))),
        ({"name": ""}, (422, (10008, "CF-UnprocessableEntity"))),
        ({"name": "x", "color": "red"}, (422, (10008, "CF-UnprocessableEntity"))),
        # Checked before anything changes: the name stays.
        ({"name": "x", "lifecycle": {"data": {"stack": "windows"}}}, (422, (10008, "CF-UnprocessableEntity"))),
        ({"name": "x", "lifecycle": {"type": "docker", "data": {}}}, (403, (330002, "CF-FeatureDisabled"))),
        ({"name": "x", "metadata": {"labels": {"env": "prod"}}}, (422, (10008, "CF-UnprocessableEntity"))),
    ):
        status, error, _ = await api.call("PATCH", f"/v3/apps/{guid}", body=body)
        assert (status, _error(error)) == status_error, body
    assert await _stored(api.platform) == before
    status, app, _ = await api.call(
        "PATCH", f"/v3/apps/{guid}", body={"lifecycle": {"type": "buildpack", "data": {"buildpacks": ["python"]}}}
    )
    assert (status, app["name"], app["lifecycle"]["data"]["buildpacks"]) == (200, "renamed", ["python"])
    status, _, _ = await api.call("PATCH", f"/v3/apps/{other}", body={"name": "second"})
    assert status == 200
    status, error, _ = await api.call("PATCH", "/v3/apps/nope", body={"name": "x"})
    assert (status, error["errors"][0]["detail"]) == (404, "App not found")


async def test_delete_route_unmaps_it_everywhere_and_removes_it(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    _, routes, _ = await api.call("GET", f"/v3/apps/{guid}/routes")
    [route] = routes["resources"]
    status, _, headers = await api.call("DELETE", f"/v3/routes/{route['guid']}")
    assert status == 202 and headers["Location"].startswith(f"{api.base}/v3/jobs/")
    _, job, _ = await api.call("GET", headers["Location"])
    assert job["state"] == "COMPLETE"
    _, after, _ = await api.call("GET", f"/v3/apps/{guid}/routes")
    assert after["resources"] == []
    status, body, _ = await api.call("GET", f"/v3/routes/{route['guid']}")
    assert (status, body["errors"][0]["detail"]) == (404, "Route not found")
    status, body, _ = await api.call("DELETE", f"/v3/routes/{route['guid']}")
    assert (status, body["errors"][0]["detail"]) == (404, "Route not found")
    # A route made and never mapped goes as well.
    _, domains, _ = await api.call("GET", "/v3/domains")
    made = {"host": "spare", "relationships": {"domain": {"data": {"guid": domains["resources"][0]["guid"]}}}}
    status, created, _ = await api.call("POST", "/v3/routes", body=made)
    assert status == 201
    status, _, _ = await api.call("DELETE", f"/v3/routes/{created['guid']}")
    assert status == 202
    _, left, _ = await api.call("GET", "/v3/routes?hosts=spare")
    assert left["resources"] == []


async def test_wrongly_typed_bodies_are_unprocessable_not_server_errors(api):
    guid = await _app(api)
    package = await _package(api, guid)
    space = await _space(api)
    before = await _stored(api.platform)
    for method, path, body, status_error in (
        ("POST", "/v3/apps", {"name": "a", "relationships": "x"}, (422, (10008, "CF-UnprocessableEntity"))),
        ("POST", "/v3/apps", {"name": "a", "lifecycle": "x"}, (422, (10008, "CF-UnprocessableEntity"))),
        ("POST", "/v3/apps", {"name": "a", "bogus": 1}, (422, (10008, "CF-UnprocessableEntity"))),
        (
            "POST",
            "/v3/apps",
            {"name": "d", "relationships": {"space": {"data": {"guid": space}}}, "lifecycle": {"type": "docker"}},
            (403, (330002, "CF-FeatureDisabled")),
        ),
        (
            "POST",
            "/v3/apps",
            {
                "name": "e",
                "relationships": {"space": {"data": {"guid": space}}},
                "environment_variables": {"VCAP_X": "1"},
            },
            (422, (10008, "CF-UnprocessableEntity")),
        ),
        (
            "POST",
            "/v3/packages",
            {"type": "bits", "relationships": {"app": "x"}},
            (422, (10008, "CF-UnprocessableEntity")),
        ),
        ("POST", "/v3/packages", {"type": "zzz"}, (422, (10008, "CF-UnprocessableEntity"))),
        ("POST", "/v3/routes", {"host": "h", "relationships": "x"}, (422, (10008, "CF-UnprocessableEntity"))),
        ("POST", "/v3/builds", {"package": {"guid": package}, "bogus": 1}, (422, (10008, "CF-UnprocessableEntity"))),
        ("POST", "/v3/builds", {"package": "x"}, (422, (10008, "CF-UnprocessableEntity"))),
        ("POST", "/v3/resource_matches", {"resources": []}, (422, (10008, "CF-UnprocessableEntity"))),
        (
            "PATCH",
            f"/v3/apps/{guid}/environment_variables",
            {"var": {"VCAP_X": "2"}},
            (422, (10008, "CF-UnprocessableEntity")),
        ),
        (
            "PATCH",
            f"/v3/apps/{guid}/environment_variables",
            {"var": {"": "3"}},
            (422, (10008, "CF-UnprocessableEntity")),
        ),
        (
            "PATCH",
            f"/v3/apps/{guid}/environment_variables",
            {"var": {"PORT": "3"}},
            (422, (10008, "CF-UnprocessableEntity")),
        ),
        (
            "PATCH",
            f"/v3/apps/{guid}/relationships/current_droplet",
            {"data": "x"},
            (422, (10008, "CF-UnprocessableEntity")),
        ),
    ):
        status, error, _ = await api.call(method, path, body=body)
        assert (status, _error(error)) == status_error, (method, path, body)
    routes = [r async for r in _route_guids(api)]
    status, error, _ = await api.call(
        "POST", f"/v3/routes/{routes[0]}/destinations", body={"destinations": [{"app": "x"}]}
    )
    assert (status, _error(error)) == (422, (10008, "CF-UnprocessableEntity"))
    # JSON nested past any sense, and JSON's missing NaN: parse errors.
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"var": {"A": NaN}}', b'{"a": Infinity}'):
        status, error, _ = await api.call(
            "PATCH", f"/v3/apps/{guid}/environment_variables", raw=raw, ctype="application/json"
        )
        assert (status, _error(error)) == (400, (1001, "CF-MessageParseError")), raw[:20]
    assert await _stored(api.platform) == before
    _, env, _ = await api.call("GET", f"/v3/apps/{guid}/environment_variables")
    assert env["var"] == {}


async def _route_guids(api):
    _, routes, _ = await api.call("GET", "/v3/routes")
    for route in routes["resources"]:
        yield route["guid"]


async def test_upload_mistakes_are_the_clients_and_leave_the_package_waiting(api):
    guid = await _app(api)
    package = await _package(api, guid)
    files = {"app.py": b"print('hi')\n"}
    [resource] = resources(files)
    # Nothing at all.
    status, body = await _upload(api, package, None, [])
    assert (status, _error(body)) == (422, (10008, "CF-UnprocessableEntity"))
    assert body["errors"][0]["detail"] == "Upload must include either resources or bits"
    # A resource the pool does not hold.
    status, body = await _upload(api, package, None, [resource])
    assert (status, _error(body)) == (422, (150001, "CF-AppPackageInvalid")), body
    # Unsafe paths and modes, in CC's words.
    for bad, status_error in (
        ({**resource, "path": "../x.py"}, (400, (160004, "CF-AppResourcesFilePathInvalid"))),
        ({**resource, "path": "/etc/passwd"}, (400, (160004, "CF-AppResourcesFilePathInvalid"))),
        ({**resource, "mode": "400"}, (400, (160003, "CF-AppResourcesFileModeInvalid"))),
        ({**resource, "mode": "rwx"}, (400, (160003, "CF-AppResourcesFileModeInvalid"))),
    ):
        status, body = await _upload(api, package, None, [bad])
        assert (status, _error(body)) == status_error, bad
    _, shown, _ = await api.call("GET", f"/v3/packages/{package}")
    assert shown["state"] == "AWAITING_UPLOAD"
    # The bits themselves, then a second package claiming them with the wrong size.
    status, body = await _upload(api, package, app_zip(files))
    assert status == 200, body
    await _poll(api, f"/v3/packages/{package}", lambda p: p["state"] == "READY")
    second = await _package(api, guid)
    status, body = await _upload(api, second, None, [{**resource, "size_in_bytes": 999}])
    assert (status, _error(body)) == (422, (150001, "CF-AppPackageInvalid")), body
    status, body = await _upload(api, second, None, [resource])
    assert (status, body.get("state")) == (200, "READY"), body


async def test_auth_only_bearer_tokens_count_and_unknown_paths_are_not_found_to_anyone(api):
    status, body, _ = await api.call("GET", "/v3/apps", headers={"Authorization": "Basic YWRtaW46eA=="}, auth=False)
    assert (status, _error(body)) == (401, (10002, "CF-NotAuthenticated"))
    status, body, _ = await api.call("GET", "/v3/apps", headers={"Authorization": "bearer x.y.z"}, auth=False)
    assert (status, _error(body)) == (401, (1000, "CF-InvalidAuthToken"))
    status, body, _ = await api.call("GET", "/v3/no-such-thing", auth=False)
    assert (status, _error(body)) == (404, (10000, "CF-NotFound"))


async def test_label_selectors_select_as_on_resources_with_no_labels(api):
    guid = await _app(api)
    for selector, guids in (
        ("env%3Dprod", []),
        ("env%20in%20(a,b)", []),
        ("!env", [guid]),
        ("env!%3Dprod,!tier", [guid]),
        ("env%20notin%20(a,b)", [guid]),
        ("!env,", [guid]),  # a trailing comma adds nothing
    ):
        status, apps, _ = await api.call("GET", f"/v3/apps?label_selector={selector}")
        assert (status, [a["guid"] for a in apps["resources"]]) == (200, guids), selector
    _, packages, _ = await api.call("GET", "/v3/packages?label_selector=env%3Dprod")
    assert packages["resources"] == []
    for bad in ("!!!", "", "!env%3Dprod"):
        status, body, _ = await api.call("GET", f"/v3/apps?label_selector={bad}")
        assert (status, _error(body)) == (400, (10005, "CF-BadQueryParameter")), bad


async def test_a_name_that_is_not_a_string_is_named_so(api):
    space = await _space(api)
    body = {"name": 123, "relationships": {"space": {"data": {"guid": space}}}}
    status, error, _ = await api.call("POST", "/v3/apps", body=body)
    assert (status, error["errors"][0]["detail"]) == (422, "App name must be a string")


async def test_any_printable_name_is_an_app_name_as_cloud_controller_takes_it(api):
    space = await _space(api)
    body = {"name": "My App (v2)", "relationships": {"space": {"data": {"guid": space}}}}
    status, app, _ = await api.call("POST", "/v3/apps", body=body)
    assert (status, app["name"]) == (201, "My App (v2)")
    _, apps, _ = await api.call("GET", "/v3/apps?names=My%20App%20(v2)")
    assert [a["guid"] for a in apps["resources"]] == [app["guid"]]
    status, error, _ = await api.call("PATCH", f"/v3/apps/{app['guid']}", body={"name": "x" * 256})
    assert status == 422 and "longer than 255" in error["errors"][0]["detail"]


async def test_every_list_checks_its_order_by(api):
    await _app(api)
    for path in ("/v3/organizations", "/v3/spaces", "/v3/audit_events", "/v3/droplets", "/v3/apps"):
        status, body, _ = await api.call("GET", f"{path}?order_by=bogus")
        assert (status, _error(body)) == (400, (10005, "CF-BadQueryParameter")), path
        status, _, _ = await api.call("GET", f"{path}?order_by=-created_at")
        assert status == 200, path
    _, newest_first, _ = await api.call("GET", "/v3/audit_events?order_by=-created_at")
    times = [e["created_at"] for e in newest_first["resources"]]
    assert times == sorted(times, reverse=True) and len(times) >= 1


async def test_only_a_push_maps_the_default_route_never_an_update_that_names_no_route(api):
    space = await _space(api)
    for name in ("plain", "Other App"):
        body = {"name": name, "relationships": {"space": {"data": {"guid": space}}}}
        status, app, _ = await api.call("POST", "/v3/apps", body=body)
        assert status == 201
        status, env, _ = await api.call(
            "PATCH", f"/v3/apps/{app['guid']}/environment_variables", body={"var": {"A": "1"}}
        )
        assert (status, env["var"]) == (200, {"A": "1"}), env
        status, _, _ = await api.call(
            "PATCH", f"/v3/apps/{app['guid']}", body={"lifecycle": {"type": "buildpack", "data": {"buildpacks": []}}}
        )
        assert status == 200
        _, routes, _ = await api.call("GET", f"/v3/apps/{app['guid']}/routes")
        assert routes["resources"] == [], name


async def test_a_rename_with_a_lifecycle_is_one_change_or_none(api):
    guid = await _app(api, "first")
    before = await _stored(api.platform)
    body = {"name": "second", "lifecycle": {"type": "buildpack", "data": {"buildpacks": ["no-such-buildpack"]}}}
    status, error, _ = await api.call("PATCH", f"/v3/apps/{guid}", body=body)
    assert status == 422, error
    _, app, _ = await api.call("GET", f"/v3/apps/{guid}")
    assert app["name"] == "first"
    assert await _stored(api.platform) == before
    body["lifecycle"]["data"]["buildpacks"] = ["python"]
    status, app, _ = await api.call("PATCH", f"/v3/apps/{guid}", body=body)
    assert (status, app["name"], app["lifecycle"]["data"]["buildpacks"]) == (200, "second", ["python"])


async def test_a_deleted_apps_routes_outlive_it_as_orphans(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    _, routes, _ = await api.call("GET", f"/v3/apps/{guid}/routes")
    [route] = routes["resources"]
    status, _, _ = await api.call("DELETE", f"/v3/apps/{guid}")
    assert status == 202
    status, orphan, _ = await api.call("GET", f"/v3/routes/{route['guid']}")
    assert (status, orphan["destinations"]) == (200, [])
    # `cf delete -r` deletes it after the app.
    status, _, _ = await api.call("DELETE", f"/v3/routes/{route['guid']}")
    assert status == 202


async def test_the_route_commands_find_a_route_by_its_empty_path(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    _, domains, _ = await api.call("GET", "/v3/domains")
    domain = domains["resources"][0]["guid"]
    # cf route / map-route / unmap-route / delete-route: the route by its attributes.
    status, found, _ = await api.call("GET", f"/v3/routes?domain_guids={domain}&hosts=hello&paths=&per_page=1&page=1")
    assert (status, [r["url"] for r in found["resources"]]) == (200, ["hello.apps.internal"])
    _, none, _ = await api.call("GET", f"/v3/routes?domain_guids={domain}&hosts=hello&paths=/x")
    assert none["resources"] == []
    # cf routes: the route summaries ask for the service bindings of each route.
    route = found["resources"][0]["guid"]
    status, bindings, _ = await api.call(
        "GET", f"/v3/service_route_bindings?include=service_instance&route_guids={route}"
    )
    assert (status, bindings["resources"], bindings["included"]) == (200, [], {"service_instances": []})


async def test_org_space_quota_buildpack_and_feature_flag_commands_get_their_resources(api):
    _, orgs, _ = await api.call("GET", "/v3/organizations")
    [org] = orgs["resources"]
    space = await _space(api)
    quota_guid = org["relationships"]["quota"]["data"]["guid"]
    # cf org
    status, quota, _ = await api.call("GET", f"/v3/organization_quotas/{quota_guid}")
    assert (status, quota["name"], quota["apps"]["total_memory_in_mb"]) == (
        200,
        "default",
        quota["apps"]["total_memory_in_mb"],
    )
    assert quota["apps"]["total_memory_in_mb"] > 0 and quota["relationships"]["organizations"]["data"] == [
        {"guid": org["guid"]}
    ]
    status, segment, _ = await api.call(
        "GET", f"/v3/organizations/{org['guid']}/relationships/default_isolation_segment"
    )
    assert (status, segment["data"]) == (200, None)
    status, segments, _ = await api.call("GET", f"/v3/isolation_segments?organization_guids={org['guid']}")
    assert (status, segments["resources"]) == (200, [])
    # cf quotas / org-quota
    _, quotas, _ = await api.call("GET", "/v3/organization_quotas?names=default&per_page=1&page=1")
    assert [q["guid"] for q in quotas["resources"]] == [quota_guid]
    _, none, _ = await api.call("GET", "/v3/organization_quotas?names=gold")
    assert none["resources"] == []
    status, body, _ = await api.call("GET", "/v3/organization_quotas/nope")
    assert (status, body["errors"][0]["detail"]) == (404, "Organization quota not found")
    # cf space
    for path in (
        f"/v3/service_instances?space_guids={space}",
        f"/v3/spaces/{space}/running_security_groups",
        f"/v3/spaces/{space}/staging_security_groups",
    ):
        status, listed, _ = await api.call("GET", path)
        assert (status, listed["resources"], listed["pagination"]["total_results"]) == (200, [], 0), path
    status, isolation, _ = await api.call("GET", f"/v3/spaces/{space}/relationships/isolation_segment")
    assert (status, isolation["data"]) == (200, None)
    # cf buildpacks
    _, buildpacks, _ = await api.call("GET", "/v3/buildpacks")
    names = [b["name"] for b in buildpacks["resources"]]
    assert "python_buildpack" in names and [b["position"] for b in buildpacks["resources"]] == list(
        range(1, len(names) + 1)
    )
    assert all(
        b["state"] == "READY" and b["enabled"] and b["filename"].endswith(".zip") for b in buildpacks["resources"]
    )
    # cf feature-flags / feature-flag
    _, flags, _ = await api.call("GET", "/v3/feature_flags")
    by_name = {f["name"]: f["enabled"] for f in flags["resources"]}
    assert by_name["diego_docker"] is False and by_name["route_creation"] is True
    status, flag, _ = await api.call("GET", "/v3/feature_flags/diego_docker")
    assert (status, flag["enabled"]) == (200, False)
    status, body, _ = await api.call("GET", "/v3/feature_flags/nope")
    assert (status, body["errors"][0]["detail"]) == (404, "Feature flag not found")


async def test_delete_orphaned_routes_deletes_the_unmapped_ones_only(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    _, domains, _ = await api.call("GET", "/v3/domains")
    made = {"host": "spare", "relationships": {"domain": {"data": {"guid": domains["resources"][0]["guid"]}}}}
    status, _, _ = await api.call("POST", "/v3/routes", body=made)
    assert status == 201
    status, _, headers = await api.call("DELETE", f"/v3/spaces/{space['guid']}/routes?unmapped=true")
    assert status == 202
    _, job, _ = await api.call("GET", headers["Location"])
    assert job["state"] == "COMPLETE"
    _, routes, _ = await api.call("GET", "/v3/routes")
    assert [r["url"] for r in routes["resources"]] == ["hello.apps.internal"]
    status, body, _ = await api.call("DELETE", f"/v3/spaces/{space['guid']}/routes")
    assert status == 422


async def test_apply_manifest_maps_the_default_route_only_when_the_manifest_asks(api):
    space = await _space(api)
    path = f"/v3/spaces/{space}/actions/apply_manifest"
    for name, extra, routes in (("asks", "  default-route: true\n", ["asks.apps.internal"]), ("plain", "", [])):
        manifest = f"applications:\n- name: {name}\n  memory: 64M\n{extra}".encode()
        status, _, _ = await api.call("POST", path, raw=manifest, ctype="application/x-yaml")
        assert status == 202
        _, apps, _ = await api.call("GET", f"/v3/apps?names={name}")
        _, mapped, _ = await api.call("GET", f"/v3/apps/{apps['resources'][0]['guid']}/routes")
        assert [r["url"] for r in mapped["resources"]] == routes, name


async def test_log_cache_reads_its_parameters_as_log_cache_does(api):
    _, space = await _target(api)
    guid, _ = await _push(api, space)
    _, newest, _ = await api.call("GET", f"/api/v1/read/{guid}?descending=1&limit=1")
    _, oldest, _ = await api.call("GET", f"/api/v1/read/{guid}?descending=false&limit=1")
    [last], [first] = newest["envelopes"]["batch"], oldest["envelopes"]["batch"]
    assert int(last["timestamp"]) > int(first["timestamp"])  # 1 is true, as Go's ParseBool reads it
    _, counters, _ = await api.call("GET", f"/api/v1/read/{guid}?envelope_types=COUNTER")
    assert counters["envelopes"]["batch"] == []
    for bad in ("envelope_types=BOGUS", "descending=sideways"):
        status, body, _ = await api.call("GET", f"/api/v1/read/{guid}?{bad}")
        assert (status, _error(body)) == (400, (10005, "CF-BadQueryParameter")), bad


async def test_v2_restart_instance_stops_it_and_diego_starts_it_again(api):
    import asyncio

    _, space = await _target(api)
    guid, _ = await _push(api, space)  # two instances
    _, before, _ = await api.call("GET", f"/v2/apps/{guid}/instances")
    status, _, _ = await api.call("DELETE", f"/v2/apps/{guid}/instances/0")
    assert status == 204
    for _ in range(300):
        _, now, _ = await api.call("GET", f"/v2/apps/{guid}/instances")
        if now["0"]["state"] == "RUNNING" and now["0"]["since"] > before["0"]["since"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"instance 0 never ran again: {now}")
    assert now["1"]["since"] == before["1"]["since"]  # the other one untouched
    for index in ("7", "x"):
        status, body, _ = await api.call("DELETE", f"/v2/apps/{guid}/instances/{index}")
        assert (status, body["error_code"]) == (400, "CF-InstancesError"), index


async def test_v2_refuses_bad_app_attributes_with_its_own_error_codes(api):
    space = await _space(api)
    status, created, _ = await api.call("POST", "/v2/apps", body={"name": "v2app", "space_guid": space})
    assert status == 201, created
    guid = created["metadata"]["guid"]
    for body, expected in (
        ({"instances": -1}, (400, 100001, "CF-AppInvalid")),
        ({"memory": 0}, (400, 100006, "CF-AppMemoryInvalid")),
        ({"memory": -5}, (400, 100006, "CF-AppMemoryInvalid")),
        ({"health_check_type": "tcp"}, (400, 100001, "CF-AppInvalid")),
    ):
        status, error, _ = await api.call("PUT", f"/v2/apps/{guid}", body=body)
        assert (status, error.get("code"), error.get("error_code")) == expected, (body, error)
    big = {"name": "big", "space_guid": space, "instances": 100000, "memory": 1024}
    status, error, _ = await api.call("POST", "/v2/apps", body=big)
    assert (status, error.get("code"), error.get("error_code")) == (400, 100005, "CF-AppMemoryQuotaExceeded"), error
