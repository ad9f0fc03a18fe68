"""Cloud Controller's V3 endpoints, as cf v8 calls them (DESIGN.md section 8).

Each handler turns a request into the protocol messages the cli sends to
`cloud_controller` (a push through the API is the same steps), and the
replies into V3 resources (`actors.api.present`). The edge keeps nothing:
jobs, routes and every record are Cloud Controller's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from aiohttp import BodyPartReader, web

from actors.api.context import BASE_URL, Edge, dig, json_body, known_fields, read_body
from actors.api.errors import (
    ApiError,
    bad_request,
    from_exception,
    not_found,
    parse_error,
    unprocessable,
    upload_invalid,
)
from actors.api.present import DOMAIN_GUID, paginate, route_guid
from actors.appfiles import clean_name
from actors.manifest import ManifestNotYaml, parse_manifest, reserved_env_name
from protocol.buildpacks import buildpack_name
from protocol.errors import PackageBitsAlreadyUploaded, PlatformError
from protocol.manifest import DEFAULT_DOMAIN, AppSpec, validate_app_name
from protocol.messages import (
    CreateBuild,
    CreateOrUpdateApp,
    CreatePackage,
    CreateRoute,
    DeleteApp,
    DeleteRoute,
    GetApp,
    GetAppInstances,
    GetEvents,
    ListAppBuilds,
    ListAppDroplets,
    ListAppPackages,
    ListAppRecords,
    ListRoutes,
    MapRoute,
    MatchResources,
    PatchApp,
    RecordJob,
    ScaleApp,
    SetCurrentDroplet,
    ShowApp,
    ShowBuild,
    ShowDroplet,
    ShowJob,
    ShowPackage,
    StartApp,
    StopApp,
    UnmapRoute,
    UploadPackage,
)
from protocol.records import AppFile, AppRecord, BuildRecord, PackageRecord
from protocol.states import BuildState

__all__ = ["MAX_UPLOAD_BYTES", "STAGING_LOG_HOLD", "add_routes", "receive_upload", "resources_of"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The largest upload accepted (CC's default maximum package size, 1 GB).
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
#: cf v8 shows a staging log line only once it is 2 s old and the build is
#: still STAGING when it looks; a build is shown STAGING this long after it
#: ends, so the last lines of a fast staging still reach the user.
STAGING_LOG_HOLD = 2.5
_SHA1 = re.compile(r"[0-9a-f]{40}")
_OCTAL = re.compile(r"[0-7]{1,6}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v3", _v3_root)
    r.add_get("/v3/info", _info)
    r.add_get("/v3/organizations", _organizations)
    r.add_get("/v3/organizations/{guid}", _organization)
    r.add_get("/v3/organizations/{guid}/domains", _org_domains)
    r.add_get("/v3/organizations/{guid}/domains/default", _org_default_domain)
    r.add_get("/v3/spaces", _spaces)
    r.add_get("/v3/spaces/{guid}", _space)
    r.add_get("/v3/domains", _domains)
    r.add_get("/v3/domains/{guid}", _domain)
    r.add_get("/v3/stacks", _stacks)
    r.add_post("/v3/spaces/{guid}/manifest_diff", _manifest_diff)
    r.add_post("/v3/spaces/{guid}/actions/apply_manifest", _apply_manifest)
    r.add_get("/v3/jobs/{guid}", _job)
    r.add_get("/v3/apps", _apps)
    r.add_post("/v3/apps", _create_app)
    r.add_get("/v3/apps/{guid}", _app)
    r.add_patch("/v3/apps/{guid}", _update_app)
    r.add_delete("/v3/apps/{guid}", _delete_app)
    r.add_post("/v3/apps/{guid}/actions/start", _start)
    r.add_post("/v3/apps/{guid}/actions/restart", _restart)
    r.add_post("/v3/apps/{guid}/actions/stop", _stop)
    r.add_get("/v3/apps/{guid}/processes", _app_processes)
    r.add_get("/v3/apps/{guid}/processes/{type}", _app_process)
    r.add_get("/v3/apps/{guid}/processes/{type}/stats", _app_process_stats)
    r.add_post("/v3/apps/{guid}/processes/{type}/actions/scale", _app_scale)
    r.add_get("/v3/processes", _processes)
    r.add_get("/v3/processes/{guid}", _process)
    r.add_get("/v3/processes/{guid}/stats", _process_stats)
    r.add_get("/v3/processes/{guid}/sidecars", _empty_list)
    r.add_post("/v3/processes/{guid}/actions/scale", _process_scale)
    r.add_get("/v3/apps/{guid}/routes", _app_routes)
    r.add_get("/v3/routes", _routes)
    r.add_post("/v3/routes", _create_route)
    r.add_get("/v3/routes/{guid}", _route)
    r.add_delete("/v3/routes/{guid}", _delete_route)
    r.add_post("/v3/routes/{guid}/destinations", _map_destinations)
    r.add_delete("/v3/routes/{guid}/destinations/{dest}", _unmap_destination)
    r.add_get("/v3/apps/{guid}/droplets/current", _current_droplet)
    r.add_get("/v3/apps/{guid}/relationships/current_droplet", _current_droplet_relationship)
    r.add_patch("/v3/apps/{guid}/relationships/current_droplet", _set_current_droplet)
    r.add_get("/v3/apps/{guid}/droplets", _app_droplets)
    r.add_get("/v3/droplets", _droplets)
    r.add_get("/v3/droplets/{guid}", _droplet)
    r.add_get("/v3/apps/{guid}/packages", _app_packages)
    r.add_get("/v3/packages", _packages)
    r.add_post("/v3/packages", _create_package)
    r.add_get("/v3/packages/{guid}", _package)
    r.add_get("/v3/packages/{guid}/droplets", _package_droplets)
    r.add_post("/v3/packages/{guid}/upload", _upload)
    r.add_post("/v3/resource_matches", _resource_matches)
    r.add_post("/v3/builds", _create_build)
    r.add_get("/v3/builds/{guid}", _build)
    r.add_get("/v3/apps/{guid}/builds", _app_builds)
    r.add_get("/v3/deployments", _empty_list)
    r.add_get("/v3/audit_events", _audit_events)
    r.add_get("/v3/apps/{guid}/env", _env)
    r.add_get("/v3/apps/{guid}/environment_variables", _env_vars)
    r.add_patch("/v3/apps/{guid}/environment_variables", _set_env_vars)
    r.add_get("/v3/apps/{guid}/features", _features)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _list(edge: Edge, items: list[Any], render: Callable[[Any], Any]) -> web.Response:
    return _json(paginate(edge.base, edge.request.path, edge.query(), items, render))


# --- the fixed resources ----------------------------------------------------------------------


async def _v3_root(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]()
    names = ("apps", "builds", "buildpacks", "deployments", "domains", "droplets", "feature_flags", "info")
    more: tuple[str, ...] = ("isolation_segments", "organizations", "organization_quotas", "packages", "processes")
    more += ("resource_matches", "routes", "security_groups", "service_instances", "spaces", "stacks", "audit_events")
    links = {"self": {"href": f"{base}/v3"}}
    links.update({n: {"href": f"{base}/v3/{n}"} for n in (*names, *more)})
    return _json({"links": links})


async def _info(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]()
    return _json(
        {
            "build": "minifoundry",
            "cli_version": {"minimum": "", "recommended": ""},
            "custom": {},
            "description": "minifoundry: Cloud Foundry's cf push pipeline in one process",
            "name": "minifoundry",
            "version": 3,
            "osbapi_version": "2.15",
            "links": {"self": {"href": f"{base}/v3/info"}, "support": {"href": ""}},
        }
    )


#: The orders CC's organization and space lists take (of their resources).
_BY_NAME_OR_TIME: dict[str, Callable[[Any], Any]] = {
    key: itemgetter(key) for key in ("name", "created_at", "updated_at")
}


def _filtered_names(edge: Edge, name: str) -> bool:
    names = edge.query_list("names")
    return names is None or name in names


async def _organizations(request: web.Request) -> web.Response:
    edge = Edge(request)
    guids = edge.query_list("guids")
    keep = _filtered_names(edge, edge.names.org) and (guids is None or edge.names.org_guid in guids)
    orgs = _ordered(edge, [edge.names.organization()] if keep else [], _BY_NAME_OR_TIME)
    return _list(edge, orgs, lambda x: x)


async def _organization(request: web.Request) -> web.Response:
    edge = Edge(request)
    if request.match_info["guid"] != edge.names.org_guid:
        raise not_found("Organization")
    return _json(edge.names.organization())


async def _org_domains(request: web.Request) -> web.Response:
    edge = Edge(request)
    if request.match_info["guid"] != edge.names.org_guid:
        raise not_found("Organization")
    return _list(edge, [edge.names.domain()], lambda x: x)


async def _org_default_domain(request: web.Request) -> web.Response:
    edge = Edge(request)
    if request.match_info["guid"] != edge.names.org_guid:
        raise not_found("Organization")
    return _json(edge.names.domain())


async def _spaces(request: web.Request) -> web.Response:
    edge = Edge(request)
    orgs = edge.query_list("organization_guids")
    guids = edge.query_list("guids")
    keep = (
        _filtered_names(edge, edge.names.space)
        and (orgs is None or edge.names.org_guid in orgs)
        and (guids is None or edge.names.space_guid in guids)
    )
    spaces = _ordered(edge, [edge.names.space_resource()] if keep else [], _BY_NAME_OR_TIME)
    return _list(edge, spaces, lambda x: x)


def _check_space(edge: Edge) -> None:
    if edge.request.match_info["guid"] != edge.names.space_guid:
        raise not_found("Space")


async def _space(request: web.Request) -> web.Response:
    edge = Edge(request)
    _check_space(edge)
    return _json(edge.names.space_resource())


async def _domains(request: web.Request) -> web.Response:
    edge = Edge(request)
    keep = _filtered_names(edge, DEFAULT_DOMAIN)
    return _list(edge, [edge.names.domain()] if keep else [], lambda x: x)


async def _domain(request: web.Request) -> web.Response:
    edge = Edge(request)
    if request.match_info["guid"] != DOMAIN_GUID:
        raise not_found("Domain")
    return _json(edge.names.domain())


async def _stacks(request: web.Request) -> web.Response:
    edge = Edge(request)
    names = edge.query_list("names")
    stacks = [s for s in edge.names.stacks if names is None or s in names]
    return _list(edge, stacks, edge.names.stack)


async def _empty_list(request: web.Request) -> web.Response:
    return _list(Edge(request), [], lambda x: x)


# --- manifests and jobs ---------------------------------------------------------------------------


async def _manifest_text(request: web.Request) -> str:
    kind = (request.content_type or "").lower()
    if kind not in ("application/x-yaml", "text/yaml", "application/yaml", "text/x-yaml"):
        raise bad_request("Content-Type must be yaml")
    raw = await read_body(request)
    if raw is None:
        raise bad_request("Manifest size is too large. The maximum supported size is 1MB.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the manifest is not UTF-8") from None


def _parse(text: str) -> Any:
    """The manifest as Cloud Controller reads it: YAML that is not a mapping
    is a parse error, anchors and aliases are refused, then the apps are checked."""
    top: yaml.Event | None = None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise bad_request("Manifest does not support Anchors and Aliases")
            if top is None and isinstance(event, yaml.NodeEvent):
                top = event
    except (yaml.YAMLError, RecursionError):
        raise parse_error("invalid request body") from None
    if not isinstance(top, yaml.MappingStartEvent):
        raise parse_error("invalid request body")
    try:
        return parse_manifest(text, base_dir=None, source="(request body)")
    except ManifestNotYaml:
        raise parse_error("invalid request body") from None
    except PlatformError as exc:
        raise unprocessable(exc.message or str(exc)) from None


async def _manifest_diff(request: web.Request) -> web.Response:
    """What applying the manifest would change; cf prints it before applying."""
    edge = Edge(request)
    _check_space(edge)
    manifest = _parse(await _manifest_text(request))
    diff: list[dict[str, Any]] = []
    for index, (spec, given) in enumerate(zip(manifest.apps, manifest.explicit, strict=True)):
        try:
            app: AppRecord | None = await edge.cc(GetApp(spec.name))
        except ApiError:
            app = None
        diff.extend(_diff(index, spec, given, app))
    return _json({"diff": diff}, status=201)


_DIFFED = {
    "memory_mb": ("memory", lambda v: f"{v}M"),
    "disk_mb": ("disk_quota", lambda v: f"{v}M"),
    "instances": ("instances", lambda v: v),
    "command": ("command", lambda v: v),
    "stack": ("stack", lambda v: v),
    "buildpacks": ("buildpacks", list),
}


def _diff(index: int, spec: AppSpec, given: frozenset[str], app: AppRecord | None) -> list[dict[str, Any]]:
    out = []
    for field_name, (key, show) in _DIFFED.items():
        if field_name not in given:
            continue
        value = show(getattr(spec, field_name))
        path = f"/applications/{index}/{key}"
        if app is None:
            out.append({"op": "add", "path": path, "value": value})
            continue
        was = show(getattr(app, field_name))
        if was != value:
            out.append({"op": "replace", "path": path, "was": was, "value": value})
    return out


async def _apply_manifest(request: web.Request) -> web.Response:
    """Create or update each app of the manifest (routes included), then
    answer 202 with the job that reports how it went."""
    edge = Edge(request)
    _check_space(edge)
    manifest = _parse(await _manifest_text(request))
    errors: list[tuple[int, str, str]] = []
    for spec, given, entry in zip(manifest.apps, manifest.explicit, manifest.entries, strict=True):
        try:
            # cf v8's push sends `default-route: true`; CC maps it only then.
            default = entry.get("default-route") is True
            push = CreateOrUpdateApp(spec, given, actor=edge.user, default_route=default)
            app = await edge.cc(push, timeout=60.0)
            if len(manifest.apps) == 1:
                edge.trace_app(app.guid)  # the push of this app starts here
        except ApiError as exc:
            errors.append((exc.code, exc.title, f"For application '{spec.name}': {exc.detail}"))
            break  # Cloud Controller stops at the first app that fails
    job = await edge.cc(
        RecordJob("space.apply_manifest", "space", edge.names.space_guid, tuple(errors), tuple(manifest.warnings))
    )
    return web.Response(status=202, headers={"Location": f"{edge.base}/v3/jobs/{job.guid}"})


async def _job(request: web.Request) -> web.Response:
    edge = Edge(request)
    try:
        job = await edge.cc(ShowJob(request.match_info["guid"]))
    except ApiError:
        raise not_found("Job") from None
    return _json(edge.names.job(job))


# --- apps -------------------------------------------------------------------------------------------


async def _all_apps(edge: Edge) -> list[AppRecord]:
    return await edge.cc(ListAppRecords())


def _space_matches(edge: Edge) -> bool:
    spaces = edge.query_list("space_guids")
    orgs = edge.query_list("organization_guids")
    return (spaces is None or edge.names.space_guid in spaces) and (orgs is None or edge.names.org_guid in orgs)


def _ordered(edge: Edge, items: list[Any], keys: dict[str, Callable[[Any], Any]]) -> list[Any]:
    order = edge.request.query.get("order_by", "")
    name = order.lstrip("+-")
    if name and name not in keys:
        raise ApiError(
            400,
            10005,
            "CF-BadQueryParameter",
            f"The query parameter is invalid: Order by can only be: {', '.join(sorted(keys))}",
        )
    if name:
        items = sorted(items, key=keys[name], reverse=order.startswith("-"))
    return items


async def _apps(request: web.Request) -> web.Response:
    edge = Edge(request)
    apps = await _all_apps(edge) if _space_matches(edge) else []
    names = edge.query_list("names")
    guids = edge.query_list("guids")
    stacks = edge.query_list("stacks")
    apps = [
        a
        for a in apps
        if (names is None or a.name in names)
        and (guids is None or a.guid in guids)
        and (stacks is None or a.stack in stacks)
    ]
    apps = _ordered(
        edge,
        apps,
        {
            "name": lambda a: a.name,
            "created_at": lambda a: a.created_at,
            "updated_at": lambda a: a.updated_at,
            "state": lambda a: a.state.value,
        },
    )
    included = {}
    if "space" in (request.query.get("include") or ""):
        included = {"spaces": [edge.names.space_resource()], "organizations": [edge.names.organization()]}
    body = paginate(
        edge.base, request.path, edge.query(), apps, edge.names.app, extra={"included": included} if included else None
    )
    return _json(body)


#: What CC's AppCreateMessage and AppUpdateMessage take.
_APP_CREATE_FIELDS = frozenset({"name", "environment_variables", "relationships", "lifecycle", "metadata"})
_APP_UPDATE_FIELDS = frozenset({"name", "lifecycle", "metadata"})
DOCKER_DISABLED = ApiError(403, 330002, "CF-FeatureDisabled", "Feature Disabled: diego_docker")


def _checked_name(name: Any) -> str:
    try:
        return validate_app_name(name)
    except PlatformError as exc:
        raise unprocessable(exc.message) from None


def _no_metadata(body: dict[str, Any]) -> None:
    """Labels and annotations are not kept here: refused, not dropped."""
    metadata = body.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict) or any(metadata.get(k) for k in metadata):
        raise unprocessable("Metadata labels and annotations are not supported by this platform")


def _lifecycle(raw: Any) -> dict[str, Any]:
    """The AppSpec fields a request's ``lifecycle`` sets (buildpacks, stack),
    checked as CC's lifecycle messages check them."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise unprocessable("Lifecycle must be an object")
    known_fields(raw, {"type", "data"})
    kind = raw.get("type", "buildpack")
    if kind == "docker":
        raise DOCKER_DISABLED
    if kind != "buildpack":
        raise unprocessable("Lifecycle type is not included in the list: buildpack, docker")
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise unprocessable("Lifecycle data must be an object")
    known_fields(data, {"buildpacks", "stack", "credentials"})
    fields: dict[str, Any] = {}
    buildpacks = data.get("buildpacks")
    if buildpacks is not None:
        if not isinstance(buildpacks, list) or not all(isinstance(b, str) for b in buildpacks):
            raise unprocessable("Buildpacks can only contain strings")
        fields["buildpacks"] = tuple(buildpacks)
    stack = data.get("stack")
    if stack is not None:
        if not isinstance(stack, str):
            raise unprocessable("Stack must be a string")
        fields["stack"] = stack
    return fields


def _check_lifecycle(edge: Edge, fields: dict[str, Any]) -> None:
    """What Cloud Controller would refuse of `fields`, refused before anything changes."""
    stack = fields.get("stack")
    if stack is not None and stack not in edge.names.stacks:
        raise unprocessable(f"Stack '{stack}' does not exist")
    for name in fields.get("buildpacks", ()):
        try:
            buildpack_name(name)
        except PlatformError as exc:
            raise unprocessable(exc.message) from None


def _env_changes(raw: Any, env: dict[str, str], what: str) -> dict[str, str]:
    """`env` with `raw`'s changes (a value of null unsets), each name checked
    as a manifest's are (PORT, VCAP_ and CF_ are the platform's)."""
    if not isinstance(raw, dict):
        raise unprocessable(f"{what} must be an object")
    env = dict(env)
    for key, value in raw.items():
        if not key:
            raise unprocessable(f"{what} key must be a minimum length of 1")
        reason = reserved_env_name(key)
        if reason:
            raise unprocessable(f"{what} {key}: {reason}")
        if value is None:
            env.pop(key, None)
        elif isinstance(value, str | int | float | bool):
            env[key] = value if isinstance(value, str) else json.dumps(value)
        else:
            raise unprocessable(f"Environment variable {key} must be a string, number or boolean")
    return env


async def _create_app(request: web.Request) -> web.Response:
    """`cf create-app`: an app with no bits yet (UniquenessError if the name is taken)."""
    edge = Edge(request)
    body = await json_body(request)
    known_fields(body, _APP_CREATE_FIELDS)
    name = _checked_name(body.get("name"))
    if dig(body, "relationships", "space", "data", "guid") != edge.names.space_guid:
        raise unprocessable("Invalid space. Ensure that the space exists and you have access to it.")
    _no_metadata(body)
    fields = _lifecycle(body.get("lifecycle"))
    if "environment_variables" in body:
        env = _env_changes(body["environment_variables"], {}, "Environment variables")
        fields["env"] = tuple(sorted(env.items()))
    spec = dataclasses.replace(AppSpec(name=name), **fields)
    given = set(fields)
    try:
        await edge.cc(GetApp(spec.name))
    except ApiError:
        pass
    else:
        raise ApiError(422, 10016, "CF-UniquenessError", f"App with the name '{spec.name}' already exists.")
    spec = dataclasses.replace(spec, no_route=True)  # create-app maps no route
    app = await edge.cc(CreateOrUpdateApp(spec, frozenset(given), actor=edge.user))
    return _json(edge.names.app(app), status=201)


async def _app_record(edge: Edge, guid: str | None = None) -> AppRecord:
    guid = guid or edge.request.match_info["guid"]
    return await edge.cc(ShowApp(guid))


async def _app(request: web.Request) -> web.Response:
    edge = Edge(request)
    return _json(edge.names.app(await _app_record(edge)))


async def _update_app(request: web.Request) -> web.Response:
    """`cf rename` (and a lifecycle's buildpacks or stack): PATCH /v3/apps/:guid.
    Everything is checked before anything changes."""
    edge = Edge(request)
    app = await _app_record(edge)
    body = await json_body(request)
    known_fields(body, _APP_UPDATE_FIELDS)
    name = _checked_name(body["name"]) if "name" in body else None
    _no_metadata(body)
    fields = _lifecycle(body.get("lifecycle"))
    _check_lifecycle(edge, fields)
    app = await edge.cc(PatchApp(app.guid, name, fields.get("buildpacks"), fields.get("stack"), edge.user))
    return _json(edge.names.app(app))


async def _delete_app(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    await edge.cc(DeleteApp(app.guid, edge.user), timeout=120.0)
    job = await edge.cc(RecordJob("app.delete", "app", app.guid))
    return web.Response(status=202, headers={"Location": f"{edge.base}/v3/jobs/{job.guid}"})


async def _start(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    if app.droplet_guid is None:
        raise unprocessable("Assign a droplet before starting this app.")
    await edge.cc(StartApp(app.guid, edge.user), timeout=60.0)
    return _json(edge.names.app(await _app_record(edge, app.guid)))


async def _restart(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    if app.droplet_guid is None:
        raise unprocessable("Assign a droplet before starting this app.")
    await edge.cc(StartApp(app.guid, edge.user, restart=True), timeout=60.0)
    return _json(edge.names.app(await _app_record(edge, app.guid)))


async def _stop(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    await edge.cc(StopApp(app.guid, edge.user), timeout=60.0)
    return _json(edge.names.app(await _app_record(edge, app.guid)))


# --- processes --------------------------------------------------------------------------------------


def _web_only(request: web.Request) -> None:
    if request.match_info.get("type", "web") != "web":
        raise not_found("Process")


async def _process_app(edge: Edge) -> AppRecord:
    """The app whose web process this is (the process guid is the app's)."""
    try:
        return await edge.cc(ShowApp(edge.request.match_info["guid"]))
    except ApiError as exc:
        if exc.status == 404:
            raise not_found("Process") from None
        raise


async def _app_processes(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    return _list(edge, [app], edge.names.process)


async def _app_process(request: web.Request) -> web.Response:
    edge = Edge(request)
    _web_only(request)
    return _json(edge.names.process(await _app_record(edge)))


async def _processes(request: web.Request) -> web.Response:
    edge = Edge(request)
    apps = await _all_apps(edge) if _space_matches(edge) else []
    app_guids = edge.query_list("app_guids")
    guids = edge.query_list("guids")
    types = edge.query_list("types")
    apps = [
        a
        for a in apps
        if (app_guids is None or a.guid in app_guids)
        and (guids is None or a.guid in guids)
        and (types is None or "web" in types)
    ]
    return _list(edge, apps, edge.names.process)


async def _process(request: web.Request) -> web.Response:
    edge = Edge(request)
    return _json(edge.names.process(await _process_app(edge)))


async def _stats_of(edge: Edge, app: AppRecord) -> web.Response:
    instances = await edge.cc(GetAppInstances(app.guid))
    if any(i.state == "RUNNING" for i in instances):
        await edge.save_push_trace(app)  # where cf stops waiting: the push is done
    return _json(edge.names.stats(app, instances, edge.clock.now()))


async def _process_stats(request: web.Request) -> web.Response:
    edge = Edge(request)
    return await _stats_of(edge, await _process_app(edge))


async def _app_process_stats(request: web.Request) -> web.Response:
    edge = Edge(request)
    _web_only(request)
    return await _stats_of(edge, await _app_record(edge))


async def _scale(edge: Edge, app: AppRecord) -> web.Response:
    body = await json_body(edge.request)
    known_fields(body, {"instances", "memory_in_mb", "disk_in_mb", "log_rate_limit_in_bytes_per_second"})
    values: dict[str, int | None] = {}
    for key, limit in (("instances", 2_000_000), ("memory_in_mb", 2**31 - 1), ("disk_in_mb", 2**31 - 1)):
        value = body.get(key)
        if value is None:
            values[key] = None
            continue
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (0 if key == "instances" else 1)
            or value > limit
        ):
            what = {"instances": "Instances", "memory_in_mb": "Memory in mb", "disk_in_mb": "Disk in mb"}[key]
            raise unprocessable(f"{what} must be an integer from {0 if key == 'instances' else 1} to {limit}")
        values[key] = value
    await edge.cc(
        ScaleApp(app.guid, values["instances"], values["memory_in_mb"], values["disk_in_mb"], actor=edge.user),
        timeout=60.0,
    )
    return _json(edge.names.process(await _app_record(edge, app.guid)), status=202)


async def _app_scale(request: web.Request) -> web.Response:
    edge = Edge(request)
    _web_only(request)
    return await _scale(edge, await _app_record(edge))


async def _process_scale(request: web.Request) -> web.Response:
    edge = Edge(request)
    return await _scale(edge, await _process_app(edge))


# --- routes and domains -------------------------------------------------------------------------------


async def _all_routes(edge: Edge) -> list[tuple[str, tuple[str, ...]]]:
    return await edge.cc(ListRoutes())


async def _app_routes(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    routes = [(url, guids) for url, guids in await _all_routes(edge) if app.guid in guids]
    return _list(edge, routes, lambda r: edge.names.route(r[0], r[1]))


async def _routes(request: web.Request) -> web.Response:
    edge = Edge(request)
    routes = await _all_routes(edge) if _space_matches(edge) else []
    app_guids = edge.query_list("app_guids")
    hosts = edge.query_list("hosts")
    paths = edge.query_list("paths")
    domains = edge.query_list("domain_guids")
    guids = edge.query_list("guids")

    def keep(url: str, apps: tuple[str, ...]) -> bool:
        shown = edge.names.route(url, apps)
        return (
            (app_guids is None or any(a in app_guids for a in apps))
            and (hosts is None or shown["host"] in hosts)
            and (paths is None or shown["path"] in paths)
            and (domains is None or shown["relationships"]["domain"]["data"]["guid"] in domains)
            and (guids is None or shown["guid"] in guids)
        )

    routes = [r for r in routes if keep(*r)]
    return _list(edge, routes, lambda r: edge.names.route(r[0], r[1]))


async def _route_by_guid(edge: Edge) -> tuple[str, tuple[str, ...]]:
    guid = edge.request.match_info["guid"]
    for url, apps in await _all_routes(edge):
        if route_guid(url) == guid:
            return url, apps
    raise not_found("Route")


async def _route(request: web.Request) -> web.Response:
    edge = Edge(request)
    url, apps = await _route_by_guid(edge)
    return _json(edge.names.route(url, apps))


async def _create_route(request: web.Request) -> web.Response:
    edge = Edge(request)
    body = await json_body(request)
    known_fields(body, {"host", "path", "port", "relationships", "metadata", "options"})
    _no_metadata(body)
    host = body.get("host") or ""
    path = body.get("path") or ""
    domain = dig(body, "relationships", "domain", "data", "guid")
    if dig(body, "relationships", "space", "data", "guid") not in (None, edge.names.space_guid):
        raise unprocessable("Invalid space. Ensure that the space exists and you have access to it.")
    if domain != DOMAIN_GUID:
        raise unprocessable("Invalid domain. Ensure that the domain exists and you have access to it.")
    if not isinstance(host, str) or not isinstance(path, str) or (path and not path.startswith("/")):
        raise unprocessable("Host must be a string and path must start with '/'")
    url = f"{host}.{DEFAULT_DOMAIN}{path}" if host else f"{DEFAULT_DOMAIN}{path}"
    if any(u == url.lower() for u, _ in await _all_routes(edge)):
        raise unprocessable(f"Route already exists with host '{host}' for domain '{DEFAULT_DOMAIN}'.")
    created = await edge.cc(CreateRoute(url))
    return _json(edge.names.route(created, ()), status=201)


async def _map_destinations(request: web.Request) -> web.Response:
    edge = Edge(request)
    url, _apps = await _route_by_guid(edge)
    body = await json_body(request)
    known_fields(body, {"destinations"})
    destinations = body.get("destinations")
    if not isinstance(destinations, list) or not destinations:
        raise unprocessable("Destinations must be a non-empty array")
    for d in destinations:
        guid = dig(d, "app", "guid")
        if not isinstance(guid, str):
            raise unprocessable("Destinations must each name an app")
        try:
            await edge.cc(MapRoute(guid, url, edge.user))
        except ApiError as exc:
            if exc.status == 404:
                raise unprocessable("App(s) with guid(s) not found or you do not have access.") from None
            raise
    url, apps = await _route_by_guid(edge)
    shown = edge.names.route(url, apps)
    return _json({"destinations": shown["destinations"], "links": shown["links"]})


async def _delete_route(request: web.Request) -> web.Response:
    """`cf delete-route`, `cf delete APP -r`: unmapped everywhere, then gone (202, a job)."""
    edge = Edge(request)
    url, _apps = await _route_by_guid(edge)
    await edge.cc(DeleteRoute(url, edge.user), timeout=60.0)
    job = await edge.cc(RecordJob("route.delete", "route", route_guid(url)))
    return web.Response(status=202, headers={"Location": f"{edge.base}/v3/jobs/{job.guid}"})


async def _unmap_destination(request: web.Request) -> web.Response:
    edge = Edge(request)
    url, apps = await _route_by_guid(edge)
    shown = edge.names.route(url, apps)
    for dest, app_guid in zip(shown["destinations"], apps, strict=True):
        if dest["guid"] == request.match_info["dest"]:
            await edge.cc(UnmapRoute(app_guid, url, edge.user))
            return web.Response(status=204)
    raise not_found("Destination")


# --- droplets ----------------------------------------------------------------------------------------


async def _current_droplet(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    if app.droplet_guid is None:
        raise not_found("Droplet")
    droplet = await edge.cc(ShowDroplet(app.droplet_guid))
    return _json(edge.names.droplet(droplet, app.stack))


async def _current_droplet_relationship(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    return _json(_relationship(edge, app))


def _relationship(edge: Edge, app: AppRecord) -> dict[str, Any]:
    return {
        "data": {"guid": app.droplet_guid} if app.droplet_guid else None,
        "links": {
            "self": edge.names.href(f"/v3/apps/{app.guid}/relationships/current_droplet"),
            "related": edge.names.href(f"/v3/apps/{app.guid}/droplets/current"),
        },
    }


async def _set_current_droplet(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    body = await json_body(request)
    known_fields(body, {"data"})
    guid = dig(body, "data", "guid")
    if not isinstance(guid, str):
        raise unprocessable("Unable to assign current droplet. Ensure the droplet exists and belongs to this app.")
    app = await edge.cc(SetCurrentDroplet(app.guid, guid, edge.user))
    return _json(_relationship(edge, app))


async def _app_droplets(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    droplets = await edge.cc(ListAppDroplets(app.guid))
    droplets = _filtered(edge, droplets, guids=lambda d: d.guid, states=lambda d: d.state.value)
    return _list(edge, droplets, lambda d: edge.names.droplet(d, app.stack))


async def _droplet(request: web.Request) -> web.Response:
    edge = Edge(request)
    try:
        droplet = await edge.cc(ShowDroplet(request.match_info["guid"]))
    except ApiError:
        raise not_found("Droplet") from None
    return _json(edge.names.droplet(droplet))


# --- packages and bits ----------------------------------------------------------------------------------


async def _app_packages(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    packages = await edge.cc(ListAppPackages(app.guid))
    packages = _filtered(edge, packages, guids=lambda p: p.guid, states=lambda p: p.state.value)
    return _list(edge, packages, edge.names.package)


#: The orders CC's package and droplet lists take.
_BY_TIME: dict[str, Callable[[Any], Any]] = {"created_at": lambda r: r.created_at, "updated_at": lambda r: r.updated_at}


async def _apps_asked(edge: Edge) -> list[AppRecord]:
    """The apps a list's ``app_guids`` (and space and org filters) select."""
    apps = await _all_apps(edge) if _space_matches(edge) else []
    app_guids = edge.query_list("app_guids")
    return [a for a in apps if app_guids is None or a.guid in app_guids]


def _filtered(edge: Edge, records: list[Any], **filters: Callable[[Any], str]) -> list[Any]:
    """`records` kept by the query's comma-separated filters (``states=...``)
    and put in its ``order_by`` (created_at, oldest first, by default)."""
    for key, value_of in filters.items():
        wanted = edge.query_list(key)
        if wanted is not None:
            records = [r for r in records if value_of(r) in wanted]
    records = sorted(records, key=lambda r: (r.created_at, r.guid))
    return _ordered(edge, records, _BY_TIME)


async def _packages(request: web.Request) -> web.Response:
    """GET /v3/packages: cf v8 asks for an app's newest (``app_guids``,
    ``order_by=-created_at``, ``per_page=1``) before start and restart."""
    edge = Edge(request)
    packages: list[Any] = []
    for app in await _apps_asked(edge):
        packages.extend(await edge.cc(ListAppPackages(app.guid)))
    packages = _filtered(
        edge, packages, guids=lambda p: p.guid, states=lambda p: p.state.value, types=lambda _p: "bits"
    )
    return _list(edge, packages, edge.names.package)


async def _package_record(edge: Edge, guid: str) -> PackageRecord:
    """The package with this guid, or CC's "Package not found"."""
    try:
        return await edge.cc(ShowPackage(guid))
    except ApiError:
        raise not_found("Package") from None


async def _package_droplets(request: web.Request) -> web.Response:
    """GET /v3/packages/:guid/droplets: has the newest package staged yet?"""
    edge = Edge(request)
    package = await _package_record(edge, request.match_info["guid"])
    app = await _app_record(edge, package.app_guid)
    droplets = [d for d in await edge.cc(ListAppDroplets(app.guid)) if d.package_guid == package.guid]
    droplets = _filtered(edge, droplets, guids=lambda d: d.guid, states=lambda d: d.state.value)
    return _list(edge, droplets, lambda d: edge.names.droplet(d, app.stack))


async def _droplets(request: web.Request) -> web.Response:
    """GET /v3/droplets (`cf droplets`), by app, package, guid or state."""
    edge = Edge(request)
    droplets: list[Any] = []
    stacks: dict[str, str] = {}
    for app in await _apps_asked(edge):
        stacks[app.guid] = app.stack
        droplets.extend(await edge.cc(ListAppDroplets(app.guid)))
    droplets = _filtered(
        edge,
        droplets,
        guids=lambda d: d.guid,
        states=lambda d: d.state.value,
        package_guids=lambda d: d.package_guid,
    )
    return _list(edge, droplets, lambda d: edge.names.droplet(d, stacks.get(d.app_guid)))


async def _create_package(request: web.Request) -> web.Response:
    edge = Edge(request)
    body = await json_body(request)
    known_fields(body, {"type", "relationships", "data", "metadata"})
    kind = body.get("type", "bits")
    if kind not in ("bits", "docker"):
        raise unprocessable("Type must be one of 'bits, docker'")
    if kind == "docker":
        raise unprocessable("Cannot create Docker package for a buildpack app.")
    _no_metadata(body)
    guid = dig(body, "relationships", "app", "data", "guid")
    if not isinstance(guid, str):
        raise unprocessable("App is invalid. Ensure it exists and you have access to it.")
    edge.trace_app(guid)
    try:
        package = await edge.cc(CreatePackage(guid, edge.user))
    except ApiError as exc:
        if exc.status == 404:
            raise unprocessable("App is invalid. Ensure it exists and you have access to it.") from None
        raise
    return _json(edge.names.package(package), status=201)


async def _package(request: web.Request) -> web.Response:
    edge = Edge(request)
    package = await _package_record(edge, request.match_info["guid"])
    return _json(edge.names.package(package))


def resources_of(raw: Any, *, v2: bool = False) -> tuple[AppFile, ...]:
    """The matched files an upload names, checked (V3's shape, or V2's
    ``{fn, sha1, size, mode}``)."""
    if not isinstance(raw, list) or len(raw) > 100_000:
        raise unprocessable("Resources must be valid JSON.")
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise unprocessable("Resources must be valid JSON.")
        if v2:
            path, sha1, size, mode = entry.get("fn"), entry.get("sha1"), entry.get("size"), entry.get("mode", "644")
        else:
            checksum = entry.get("checksum")
            path, sha1 = entry.get("path"), checksum.get("value") if isinstance(checksum, dict) else None
            size, mode = entry.get("size_in_bytes"), entry.get("mode", "644")
        if not isinstance(path, str) or not path or not isinstance(sha1, str) or not _SHA1.fullmatch(sha1):
            raise unprocessable("Resources must each have a path and a SHA1 checksum")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise unprocessable("Resources must each have a size in bytes of 0 or more")
        try:
            clean = clean_name(path, backslash=True)
        except PlatformError:
            clean = ""
        if not clean:
            raise ApiError(400, 160004, "CF-AppResourcesFilePathInvalid", f"File path '{path}' is not safe.")
        mode_text = str(mode)
        if not _OCTAL.fullmatch(mode_text) or int(mode_text, 8) & 0o600 != 0o600:
            raise ApiError(
                400,
                160003,
                "CF-AppResourcesFileModeInvalid",
                f"File mode '{mode_text}' is invalid. Minimum file mode is '0600'",
            )
        out.append(AppFile(clean, sha1, size, int(mode_text, 8)))
    return tuple(out)


async def receive_upload(edge: Edge, bits_field: str, *, v2: bool = False) -> tuple[tuple[AppFile, ...], Path | None]:
    """Stream a multipart upload: the `resources` JSON, and the zip in
    `bits_field` written to a temp file in the data directory in chunks
    (memory stays flat whatever its size; over `MAX_UPLOAD_BYTES` it is refused)."""
    request = edge.request
    if request.content_type == "application/x-www-form-urlencoded":
        # Nothing to upload, sent as a plain form: the resources alone.
        raw = await read_body(request, 64 * 1024 * 1024)
        form = dict(parse_qsl((raw or b"").decode("utf-8", "replace"), keep_blank_values=True))
        try:
            return resources_of(json.loads(form.get("resources") or "[]"), v2=v2), None
        except ValueError:
            raise unprocessable("Resources must be valid JSON.") from None
    if not (request.content_type or "").startswith("multipart/"):
        raise upload_invalid("the upload must be multipart/form-data with resources and bits")
    tmp_dir = Path(edge.platform.data_dir) / "tmp"
    tmp_dir.mkdir(mode=0o700, exist_ok=True)
    matched: tuple[AppFile, ...] | None = None
    archive: Path | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise upload_invalid("nested multipart bodies are not accepted")
            if part.name == "resources":
                raw = await part.read(decode=False)
                if len(raw) > 64 * 1024 * 1024:
                    raise upload_invalid("the resources list is too large")
                try:
                    matched = resources_of(json.loads(raw or b"[]"), v2=v2)
                except ValueError:
                    raise unprocessable("Resources must be valid JSON.") from None
            elif part.name == bits_field:
                if archive is not None:
                    raise upload_invalid(f"more than one {bits_field} part")
                fd, name = tempfile.mkstemp(prefix="upload-", suffix=".zip", dir=tmp_dir)
                archive = Path(name)
                size = 0
                with os.fdopen(fd, "wb") as out:
                    while chunk := await part.read_chunk(1024 * 1024):
                        size += len(chunk)
                        if size > MAX_UPLOAD_BYTES:
                            raise upload_invalid(f"Package may not be larger than {MAX_UPLOAD_BYTES // 2**20} MB")
                        out.write(chunk)
                if size == 0:
                    archive.unlink()
                    archive = None
            else:
                await part.release()  # an unknown field is skipped, as Rails would
    except ApiError:
        if archive is not None:
            archive.unlink(missing_ok=True)
        raise
    except (ValueError, OSError) as exc:
        if archive is not None:
            archive.unlink(missing_ok=True)
        raise upload_invalid(f"the multipart body cannot be read: {exc}") from None
    if matched is None:
        if archive is not None:
            archive.unlink(missing_ok=True)
        raise unprocessable("Resources must be valid JSON.") if not v2 else unprocessable("Missing resources")
    return matched, archive


async def _upload(request: web.Request) -> web.Response:
    edge = Edge(request)
    package = await _package_record(edge, request.match_info["guid"])
    if package.state.value != "AWAITING_UPLOAD":
        raise from_exception(PackageBitsAlreadyUploaded())
    edge.trace_app(package.app_guid)
    matched, archive = await receive_upload(edge, "bits")
    if not matched and archive is None:
        raise unprocessable("Upload must include either resources or bits")
    try:
        package = await edge.upload(UploadPackage(package.guid, str(archive) if archive else None, matched, edge.user))
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
    return _json(edge.names.package(package))


async def _resource_matches(request: web.Request) -> web.Response:
    edge = Edge(request)
    body = await json_body(request)
    known_fields(body, {"resources"})
    resources = body.get("resources")
    if not isinstance(resources, list) or not 1 <= len(resources) <= 5000:
        raise unprocessable("Resources must have between 1 and 5000 items")
    wanted: list[tuple[str, int]] = []
    for entry in resources:
        checksum = entry.get("checksum") if isinstance(entry, dict) else None
        sha1 = checksum.get("value") if isinstance(checksum, dict) else None
        size = entry.get("size_in_bytes") if isinstance(entry, dict) else None
        if not isinstance(sha1, str) or not _SHA1.fullmatch(sha1):
            raise unprocessable("Resources checksum value must be a SHA-1 hex digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise unprocessable("Resources size in bytes must be a non-negative integer")
        wanted.append((sha1, size))
    held = set(await edge.cc(MatchResources(tuple(wanted))))
    matched = [
        {
            "checksum": {"value": e["checksum"]["value"]},
            "size_in_bytes": e["size_in_bytes"],
            "path": e.get("path", ""),
            "mode": str(e.get("mode") or "644") if _OCTAL.fullmatch(str(e.get("mode") or "644")) else "644",
        }
        for e in resources
        if (e["checksum"]["value"], e["size_in_bytes"]) in held
    ]
    return _json({"resources": matched}, status=201)


# --- builds -------------------------------------------------------------------------------------------------


#: What CC's BuildCreateMessage takes.
_BUILD_FIELDS = frozenset(
    {
        "package",
        "lifecycle",
        "staging_memory_in_mb",
        "staging_disk_in_mb",
        "staging_log_rate_limit_bytes_per_second",
        "metadata",
    }
)


def _shown_state(edge: Edge, build: BuildRecord) -> BuildState:
    if build.state is not BuildState.STAGING and edge.clock.now() - build.updated_at.timestamp() < STAGING_LOG_HOLD:
        return BuildState.STAGING
    return build.state


async def _create_build(request: web.Request) -> web.Response:
    edge = Edge(request)
    body = await json_body(request)
    known_fields(body, _BUILD_FIELDS)
    _no_metadata(body)
    lifecycle = _lifecycle(body.get("lifecycle"))
    guid = dig(body, "package", "guid")
    if not isinstance(guid, str):
        raise unprocessable("Unable to use package. Ensure that the package exists and you have access to it.")
    try:
        package = await edge.cc(ShowPackage(guid))
    except ApiError:
        raise unprocessable(
            "Unable to use package. Ensure that the package exists and you have access to it."
        ) from None
    app = await _app_record(edge, package.app_guid)
    if any(getattr(app, key) != value for key, value in lifecycle.items()):
        raise unprocessable("A build stages with its app's buildpacks and stack here: set them on the app")
    edge.trace_app(package.app_guid)
    build = await edge.cc(CreateBuild(guid, edge.user), timeout=60.0)
    app = await _app_record(edge, build.app_guid)
    return _json(edge.names.build(build, app, shown_state=BuildState.STAGING), status=201)


async def _build(request: web.Request) -> web.Response:
    edge = Edge(request)
    try:
        build = await edge.cc(ShowBuild(request.match_info["guid"]))
    except ApiError:
        raise not_found("Build") from None
    app = None
    with contextlib.suppress(ApiError):
        app = await _app_record(edge, build.app_guid)
    return _json(edge.names.build(build, app, shown_state=_shown_state(edge, build)))


async def _app_builds(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    builds = await edge.cc(ListAppBuilds(app.guid))
    return _list(edge, builds, lambda b: edge.names.build(b, app, shown_state=_shown_state(edge, b)))


# --- events and environment ---------------------------------------------------------------------------------


async def _audit_events(request: web.Request) -> web.Response:
    edge = Edge(request)
    targets = edge.query_list("target_guids")
    types = edge.query_list("types")
    events: list[Any] = []
    for guid in targets or []:
        events.extend(await edge.cc(GetEvents(guid, limit=1000)))
    if targets is None:
        for app in await _all_apps(edge):
            events.extend(await edge.cc(GetEvents(app.guid, limit=1000)))
    events = [ev for ev in events if types is None or ev.type in types]
    events.sort(key=lambda ev: (ev.time, ev.guid))
    events = _ordered(edge, events, {"created_at": lambda ev: ev.time, "updated_at": lambda ev: ev.time})
    return _list(edge, events, edge.names.event)


async def _env(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    return _json(
        {
            "staging_env_json": {},
            "running_env_json": {},
            "environment_variables": dict(app.env),
            "system_env_json": {"VCAP_SERVICES": {}},
            "application_env_json": {
                "VCAP_APPLICATION": {
                    "application_id": app.guid,
                    "application_name": app.name,
                    "application_uris": list(app.routes),
                    "space_name": edge.names.space,
                    "organization_name": edge.names.org,
                    "limits": {"mem": app.memory_mb, "disk": app.disk_mb},
                }
            },
        }
    )


def _env_body(edge: Edge, app: AppRecord) -> dict[str, Any]:
    return {
        "var": dict(app.env),
        "links": {
            "self": edge.names.href(f"/v3/apps/{app.guid}/environment_variables"),
            "app": edge.names.href(f"/v3/apps/{app.guid}"),
        },
    }


async def _env_vars(request: web.Request) -> web.Response:
    edge = Edge(request)
    return _json(_env_body(edge, await _app_record(edge)))


async def _set_env_vars(request: web.Request) -> web.Response:
    """`cf set-env` / `unset-env`: `{"var": {NAME: value or null}}` merged into the app's env."""
    edge = Edge(request)
    app = await _app_record(edge)
    body = await json_body(request)
    known_fields(body, {"var"})
    env = _env_changes(body.get("var"), dict(app.env), "Var")
    spec = AppSpec(name=app.name, env=tuple(sorted(env.items())))
    app = await edge.cc(CreateOrUpdateApp(spec, frozenset({"env"}), actor=edge.user))
    return _json(_env_body(edge, app))


async def _features(request: web.Request) -> web.Response:
    edge = Edge(request)
    await _app_record(edge)
    features = [
        {"name": "ssh", "description": "Enable SSHing into the app.", "enabled": False},
        {"name": "revisions", "description": "Enable versioning of an application", "enabled": False},
    ]
    return _list(edge, features, lambda x: x)
