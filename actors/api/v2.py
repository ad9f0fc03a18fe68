"""Cloud Controller's V2 endpoints, as far as cloudfoundry-client (the Cloud
Foundry client on PyPI) needs them: its `PushOperation` (spaces, orgs, apps
with ``q=`` filters, routes and shared domains, resource matching, bits as
an async job, service instances and bindings, which are always empty here),
its listings and updates, and deletes.

V2 envelopes every resource as ``{metadata: {guid, url, ...}, entity}``;
the entity's ``*_url`` fields are relative ``/v2/...`` paths (the client
turns each into a method), and lists page with a relative ``next_url``.
Every call becomes the same Cloud Controller message V3 sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from actors.api.context import BASE_URL, Edge, json_body, read_body
from actors.api.errors import ApiError
from actors.api.present import DOMAIN_GUID, EPOCH, iso, named_guid, route_guid, split_route
from actors.api.v3 import receive_upload
from protocol.manifest import DEFAULT_DOMAIN, AppSpec, validate_app_name
from protocol.messages import (
    CreateOrUpdateApp,
    CreatePackage,
    CreateRoute,
    DeleteApp,
    DeleteRoute,
    GetAppInstances,
    ListAppBuilds,
    ListAppPackages,
    ListAppRecords,
    ListRoutes,
    MapRoute,
    MatchResources,
    RecordJob,
    ScaleApp,
    ShowApp,
    ShowJob,
    StageAndStart,
    StopApp,
    StopInstance,
    UnmapRoute,
    UploadPackage,
)
from protocol.records import AppRecord, BuildRecord
from protocol.states import AppState, BuildState, HealthCheckType, PackageState

__all__ = ["add_routes"]

V2_VERSION = "2.180.0"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/info", _info)
    r.add_get("/v2/organizations", _organizations)
    r.add_get("/v2/organizations/{guid}", _organization)
    r.add_get("/v2/organizations/{guid}/private_domains", _empty)
    r.add_get("/v2/organizations/{guid}/spaces", _spaces)
    r.add_get("/v2/spaces", _spaces)
    r.add_get("/v2/spaces/{guid}", _space)
    r.add_get("/v2/spaces/{guid}/apps", _apps)
    r.add_get("/v2/spaces/{guid}/service_instances", _empty)
    r.add_get("/v2/spaces/{guid}/routes", _routes)
    r.add_get("/v2/service_instances", _empty)
    r.add_get("/v2/shared_domains", _shared_domains)
    r.add_get("/v2/shared_domains/{guid}", _shared_domain)
    r.add_get("/v2/private_domains", _empty)
    r.add_get("/v2/stacks", _stacks)
    r.add_get("/v2/stacks/{guid}", _stack)
    r.add_get("/v2/apps", _apps)
    r.add_post("/v2/apps", _create_app)
    r.add_get("/v2/apps/{guid}", _app)
    r.add_put("/v2/apps/{guid}", _update_app)
    r.add_delete("/v2/apps/{guid}", _delete_app)
    r.add_get("/v2/apps/{guid}/routes", _app_routes)
    r.add_put("/v2/apps/{guid}/routes/{route}", _map_route)
    r.add_delete("/v2/apps/{guid}/routes/{route}", _unmap_route)
    r.add_get("/v2/apps/{guid}/service_bindings", _empty)
    r.add_get("/v2/apps/{guid}/instances", _instances)
    r.add_delete("/v2/apps/{guid}/instances/{index}", _kill_instance)
    r.add_get("/v2/apps/{guid}/stats", _stats)
    r.add_get("/v2/apps/{guid}/summary", _summary)
    r.add_get("/v2/apps/{guid}/env", _env)
    r.add_post("/v2/apps/{guid}/restage", _restage)
    r.add_put("/v2/apps/{guid}/bits", _upload_bits)
    r.add_put("/v2/resource_match", _resource_match)
    r.add_get("/v2/routes", _routes)
    r.add_post("/v2/routes", _create_route)
    r.add_get("/v2/routes/{guid}", _route)
    r.add_delete("/v2/routes/{guid}", _delete_route)
    r.add_get("/v2/jobs/{guid}", _job)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _not_found(kind: str, guid: str, code: int) -> ApiError:
    name = {"App": "app", "Space": "space", "Organization": "organization", "Route": "route", "Job": "job"}[kind]
    return ApiError(404, code, f"CF-{kind}NotFound", f"The {name} could not be found: {guid}")


def _resource(
    guid: str, path: str, entity: dict[str, Any], created: Any = EPOCH, updated: Any = None
) -> dict[str, Any]:
    return {
        "metadata": {"guid": guid, "url": path, "created_at": iso(created), "updated_at": iso(updated)},
        "entity": entity,
    }


# --- q= filters and pages ------------------------------------------------------------------------


def _filters(request: web.Request) -> list[tuple[str, str, list[str]]]:
    """``q=name:x`` (also ``>``, ``<``, ``>=``, ``<=``) and ``q=name IN a,b``, ANDed."""
    out = []
    # One q may hold several filters, `;`-separated (`name:x;space_guid:y`).
    for q in (part for given in request.query.getall("q", []) for part in given.split(";")):
        if " IN " in q:
            field, _, values = q.partition(" IN ")
            out.append((field.strip(), "IN", values.split(",")))
            continue
        # The leftmost operator is the filter's (`name:x>=y` is name = "x>=y").
        at = {op: q.find(op) for op in (">=", "<=", ":", ">", "<") if op in q}
        if at:
            op = min(at, key=lambda o: (at[o], -len(o)))
            field, _, value = q.partition(op)
            out.append((field.strip(), op, [value]))
        else:
            raise ApiError(400, 10005, "CF-BadQueryParameter", f"The query parameter is invalid: q={q}")
    return out


_COMPARE: dict[str, Callable[[str, str], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _matches(values: dict[str, Any], filters: list[tuple[str, str, list[str]]]) -> bool:
    for field, op, wanted in filters:
        if field not in values:
            raise ApiError(400, 10005, "CF-BadQueryParameter", f"The query parameter is invalid: {field}")
        have = "" if values[field] is None else str(values[field])
        if op in (":", "IN"):
            if have not in wanted:
                return False
        elif not _COMPARE[op](have, wanted[0]):
            return False
    return True


def _page(request: web.Request, items: list[Any], render: Callable[[Any], dict[str, Any]]) -> web.Response:
    """A V2 page: `results-per-page` (1..100, default 50) and `page`, with a
    relative `next_url`/`prev_url` that keeps the other parameters."""
    chunk, finish = _paged(request, items)
    return finish([render(x) for x in chunk])


def _paged(request: web.Request, items: list[Any]) -> tuple[list[Any], Callable[[list[Any]], web.Response]]:
    """The page's items, and what makes the page of their rendered
    resources: for a page whose rendering asks the platform per item."""

    def number(key: str, default: int, top: int | None) -> int:
        raw = request.query.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, 10005, "CF-BadQueryParameter", f"The query parameter is invalid: {key}") from None
        if value < 1 or (top is not None and value > top):
            raise ApiError(400, 10005, "CF-BadQueryParameter", f"The query parameter is invalid: {key}")
        return value

    per_page = number("results-per-page", 50, 100)
    page = number("page", 1, None)
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    kept = [(k, v) for k, v in request.query.items() if k not in ("page", "results-per-page")]

    def url(n: int) -> str:
        return f"{request.path}?{urlencode([*kept, ('page', n), ('results-per-page', per_page)])}"

    def finish(resources: list[Any]) -> web.Response:
        return _json(
            {
                "total_results": total,
                "total_pages": pages,
                "prev_url": url(page - 1) if page > 1 else None,
                "next_url": url(page + 1) if page < pages else None,
                "resources": resources,
            }
        )

    return items[(page - 1) * per_page : page * per_page], finish


async def _empty(request: web.Request) -> web.Response:
    return _page(request, [], lambda x: x)


# --- the fixed resources ---------------------------------------------------------------------------


async def _info(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]()
    return _json(
        {
            "name": "minifoundry",
            "build": "minifoundry",
            "support": "",
            "version": 2,
            "description": "minifoundry: Cloud Foundry's cf push pipeline in one process",
            "authorization_endpoint": base,
            "token_endpoint": base,
            "min_cli_version": None,
            "min_recommended_cli_version": None,
            "api_version": V2_VERSION,
            "osbapi_version": "2.15",
            "doppler_logging_endpoint": base.replace("http://", "ws://", 1),
        }
    )


def _org(edge: Edge) -> dict[str, Any]:
    g = edge.names.org_guid
    return _resource(
        g,
        f"/v2/organizations/{g}",
        {
            "name": edge.names.org,
            "billing_enabled": False,
            "quota_definition_guid": edge.names.quota_guid,
            "status": "active",
            "spaces_url": f"/v2/organizations/{g}/spaces",
            "private_domains_url": f"/v2/organizations/{g}/private_domains",
        },
    )


def _space_entity(edge: Edge) -> dict[str, Any]:
    g = edge.names.space_guid
    o = edge.names.org_guid
    return _resource(
        g,
        f"/v2/spaces/{g}",
        {
            "name": edge.names.space,
            "organization_guid": o,
            "allow_ssh": False,
            "organization_url": f"/v2/organizations/{o}",
            "apps_url": f"/v2/spaces/{g}/apps",
            "routes_url": f"/v2/spaces/{g}/routes",
            "service_instances_url": f"/v2/spaces/{g}/service_instances",
        },
    )


async def _organizations(request: web.Request) -> web.Response:
    edge = Edge(request)
    keep = _matches({"name": edge.names.org, "guid": edge.names.org_guid}, _filters(request))
    return _page(request, [_org(edge)] if keep else [], lambda x: x)


async def _organization(request: web.Request) -> web.Response:
    edge = Edge(request)
    if request.match_info["guid"] != edge.names.org_guid:
        raise _not_found("Organization", request.match_info["guid"], 30003)
    return _json(_org(edge))


async def _spaces(request: web.Request) -> web.Response:
    edge = Edge(request)
    if "guid" in request.match_info and request.match_info["guid"] != edge.names.org_guid:
        raise _not_found("Organization", request.match_info["guid"], 30003)
    values = {"name": edge.names.space, "organization_guid": edge.names.org_guid, "guid": edge.names.space_guid}
    keep = _matches(values, _filters(request))
    return _page(request, [_space_entity(edge)] if keep else [], lambda x: x)


def _check_space(edge: Edge, guid: str) -> None:
    if guid != edge.names.space_guid:
        raise _not_found("Space", guid, 40004)


async def _space(request: web.Request) -> web.Response:
    edge = Edge(request)
    _check_space(edge, request.match_info["guid"])
    return _json(_space_entity(edge))


def _domain() -> dict[str, Any]:
    return _resource(
        DOMAIN_GUID,
        f"/v2/shared_domains/{DOMAIN_GUID}",
        {"name": DEFAULT_DOMAIN, "internal": False, "router_group_guid": None, "router_group_type": None},
    )


async def _shared_domains(request: web.Request) -> web.Response:
    keep = _matches({"name": DEFAULT_DOMAIN, "guid": DOMAIN_GUID}, _filters(request))
    return _page(request, [_domain()] if keep else [], lambda x: x)


async def _shared_domain(request: web.Request) -> web.Response:
    if request.match_info["guid"] != DOMAIN_GUID:
        raise ApiError(404, 130002, "CF-DomainNotFound", f"The domain could not be found: {request.match_info['guid']}")
    return _json(_domain())


async def _stacks(request: web.Request) -> web.Response:
    edge = Edge(request)
    filters = _filters(request)
    stacks = [s for s in edge.names.stacks if _matches({"name": s, "guid": named_guid("stack", s)}, filters)]
    return _page(request, stacks, _stack_entity)


def _stack_entity(stack: str) -> dict[str, Any]:
    g = named_guid("stack", stack)
    return _resource(g, f"/v2/stacks/{g}", {"name": stack, "description": stack})


async def _stack(request: web.Request) -> web.Response:
    """`app.stack()` of cloudfoundry-client: the stack an app's `stack_url` names."""
    edge = Edge(request)
    for stack in edge.names.stacks:
        if named_guid("stack", stack) == request.match_info["guid"]:
            return _json(_stack_entity(stack))
    raise ApiError(404, 250003, "CF-StackNotFound", f"The stack could not be found: {request.match_info['guid']}")


# --- apps -----------------------------------------------------------------------------------------------


#: CC's V2 error codes for a failed staging, by the error the build names
#: (errors/v2.yml); anything else is StagingError (170001).
_STAGING_CODES = {
    "NoAppDetectedError": 170003,
    "BuildpackCompileFailed": 170004,
    "BuildpackReleaseFailed": 170005,
    "StagingTimeExpired": 170007,
    "InsufficientResources": 170008,
    "NoCompatibleCell": 170009,
}


async def _staging_view(edge: Edge, app: AppRecord) -> tuple[str, BuildRecord | None]:
    """V2's `package_state` of the app's newest bits: PENDING (no bits, or
    not staged yet, or staging), FAILED (its latest build failed; that build)
    or STAGED."""
    packages = [p for p in await edge.cc(ListAppPackages(app.guid)) if p.state is PackageState.READY]
    if not packages:
        return "PENDING", None
    builds = [b for b in await edge.cc(ListAppBuilds(app.guid)) if b.package_guid == packages[0].guid]
    if not builds or builds[0].state is BuildState.STAGING:
        return "PENDING", None
    if builds[0].state is BuildState.FAILED:
        return "FAILED", builds[0]
    return "STAGED", None


def _staging_failure(build: BuildRecord) -> tuple[int, str, str]:
    """(code, name, description) of a failed build, as V2 reports it."""
    name, _, description = (build.error or "StagingError - staging failed").partition(" - ")
    return _STAGING_CODES.get(name, 170001), name, description or name


def _app_entity(edge: Edge, app: AppRecord, view: tuple[str, BuildRecord | None] = ("STAGED", None)) -> dict[str, Any]:
    package_state, failed = view
    reason, description = (None, None)
    if failed is not None:
        _code, reason, description = _staging_failure(failed)
    g = app.guid
    s = edge.names.space_guid
    return _resource(
        g,
        f"/v2/apps/{g}",
        {
            "name": app.name,
            "production": False,
            "space_guid": s,
            "stack_guid": named_guid("stack", app.stack),
            "buildpack": app.buildpacks[0] if app.buildpacks else None,
            "detected_buildpack": None,
            "environment_json": dict(app.env),
            "memory": app.memory_mb,
            "instances": app.instances,
            "disk_quota": app.disk_mb,
            "state": app.state.value,
            "version": app.process_version or named_guid("version", g),
            "command": app.command,
            "console": False,
            "debug": None,
            "staging_task_id": None,
            "package_state": package_state,
            "health_check_type": app.health_check_type.value,
            "health_check_timeout": app.health_check_timeout,
            "health_check_http_endpoint": app.health_check_http_endpoint,
            "staging_failed_reason": reason,
            "staging_failed_description": description,
            "diego": True,
            "docker_image": None,
            "package_updated_at": iso(app.last_uploaded_at),
            "detected_start_command": app.command or "",
            "enable_ssh": False,
            "ports": [8080],
            "space_url": f"/v2/spaces/{s}",
            "stack_url": f"/v2/stacks/{named_guid('stack', app.stack)}",
            "routes_url": f"/v2/apps/{g}/routes",
            "events_url": f"/v2/apps/{g}/events",
            "service_bindings_url": f"/v2/apps/{g}/service_bindings",
            "route_mappings_url": f"/v2/apps/{g}/route_mappings",
        },
        app.created_at,
        app.updated_at,
    )


async def _app_record(edge: Edge, guid: str | None = None) -> AppRecord:
    guid = guid or edge.request.match_info["guid"]
    try:
        return await edge.cc(ShowApp(guid))
    except ApiError as exc:
        if exc.status == 404:
            raise _not_found("App", guid, 100004) from None
        raise


async def _apps(request: web.Request) -> web.Response:
    edge = Edge(request)
    if "guid" in request.match_info:
        _check_space(edge, request.match_info["guid"])
    filters = _filters(request)
    apps = await edge.cc(ListAppRecords())
    space = edge.names.space_guid
    apps = [
        a
        for a in apps
        if _matches(
            {
                "name": a.name,
                "space_guid": space,
                "organization_guid": edge.names.org_guid,
                "stack_guid": named_guid("stack", a.stack),
                "guid": a.guid,
                "state": a.state.value,
            },
            filters,
        )
    ]
    # CC's order: by id (creation), `order-direction` asc or desc.
    apps.sort(key=lambda a: (a.created_at, a.guid), reverse=_descending(request))
    # Each app's staging is asked for on the page only.
    chunk, finish = _paged(request, apps)
    views = await asyncio.gather(*(_staging_view(edge, a) for a in chunk))
    return finish([_app_entity(edge, a, view) for a, view in zip(chunk, views, strict=True)])


def _descending(request: web.Request) -> bool:
    direction = request.query.get("order-direction", "asc")
    if direction not in ("asc", "desc"):
        raise ApiError(400, 10005, "CF-BadQueryParameter", "The query parameter is invalid: order-direction")
    return direction == "desc"


_V2_FIELDS = {
    "name",
    "memory",
    "instances",
    "disk_quota",
    "space_guid",
    "stack_guid",
    "state",
    "command",
    "buildpack",
    "health_check_http_endpoint",
    "health_check_type",
    "health_check_timeout",
    "diego",
    "enable_ssh",
    "docker_image",
    "docker_credentials",
    "environment_json",
    "production",
    "console",
    "debug",
    "staging_failed_reason",
    "staging_failed_description",
    "ports",
}


def _app_invalid(detail: str) -> ApiError:
    return ApiError(400, 100001, "CF-AppInvalid", f"The app is invalid: {detail}")


def _positive(body: dict[str, Any], key: str, *, minimum: int = 1) -> int | None:
    """A whole number field, as V2 refuses one: not a number is a parse
    error; too small is the app's own error (AppMemoryInvalid for memory)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value > 2**31 - 1:
        raise ApiError(
            400, 1001, "CF-MessageParseError", f"Request invalid due to parse error: {key} must be an integer"
        )
    if value < minimum:
        if key == "memory":
            raise ApiError(
                400,
                100006,
                "CF-AppMemoryInvalid",
                "You have specified an invalid amount of memory for your application.",
            )
        if key == "instances":
            raise _app_invalid("instances less than 0")
        raise _app_invalid(f"{key} must be greater than or equal to {minimum}")
    return value


def _spec_of(edge: Edge, body: dict[str, Any], name: str) -> tuple[AppSpec, set[str]]:
    """The AppSpec fields a V2 create or update sets, checked."""
    unknown = sorted(set(body) - _V2_FIELDS)
    if unknown:
        raise _app_invalid(f"Unknown field(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key, field in (("memory", "memory_mb"), ("disk_quota", "disk_mb"), ("health_check_timeout", "timeout_s")):
        if (value := _positive(body, key)) is not None:
            changes[field] = value
    if (instances := _positive(body, "instances", minimum=0)) is not None:
        changes["instances"] = instances
    if "command" in body:
        command = body["command"]
        if command is not None and not isinstance(command, str):
            raise _app_invalid("command must be a string")
        changes["command"] = command or None
    if "buildpack" in body:
        bp = body["buildpack"]
        if bp is not None and not isinstance(bp, str):
            raise _app_invalid("buildpack must be a string")
        changes["buildpacks"] = (bp,) if bp and bp not in ("default", "null") else ()
    if "stack_guid" in body:
        stacks = {named_guid("stack", s): s for s in edge.names.stacks}
        if body["stack_guid"] not in stacks:
            raise ApiError(404, 250003, "CF-StackNotFound", f"The stack could not be found: {body['stack_guid']}")
        changes["stack"] = stacks[body["stack_guid"]]
    if "health_check_type" in body:
        try:
            changes["health_check_type"] = HealthCheckType(str(body["health_check_type"]))
        except ValueError:
            raise _app_invalid("health_check_type must be port, process or http") from None
        if changes["health_check_type"] is HealthCheckType.HTTP:
            changes["health_check_http_endpoint"] = body.get("health_check_http_endpoint") or "/"
    if "environment_json" in body:
        env = body["environment_json"]
        if env is None:
            env = {}
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            raise ApiError(400, 100001, "CF-AppInvalid", "The app is invalid: environment_json must be an object")
        changes["env"] = tuple(
            sorted((k, v if isinstance(v, str) else json.dumps(v)) for k, v in env.items() if v is not None)
        )
    return AppSpec(name=name, **changes), set(changes)


async def _create_app(request: web.Request) -> web.Response:
    edge = Edge(request)
    body = await json_body(request)
    name = body.get("name")
    try:
        validate_app_name(name)
    except Exception as exc:  # noqa: BLE001 - an invalid name is the client's error
        raise ApiError(400, 100001, "CF-AppInvalid", f"The app is invalid: {exc}") from None
    _check_space(edge, str(body.get("space_guid")))
    if [a for a in await edge.cc(ListAppRecords()) if a.name == name]:
        raise ApiError(400, 100002, "CF-AppNameTaken", f"The app name is taken: {name}")
    spec, given = _spec_of(edge, {k: v for k, v in body.items() if k not in ("name", "space_guid", "state")}, str(name))
    spec = dataclasses.replace(spec, no_route=True)  # V2 clients map routes themselves
    app = await edge.cc(CreateOrUpdateApp(spec, frozenset(given | {"no_route"}), actor=edge.user))
    edge.trace_app(app.guid)
    if body.get("state") == "STARTED":
        edge.platform.system.tell("cloud_controller", StageAndStart(app.guid, edge.user))
    return _json(_app_entity(edge, app), status=201)


async def _app(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    return _json(_app_entity(edge, app, await _staging_view(edge, app)))


async def _check_bits(edge: Edge, app: AppRecord) -> None:
    """CC's validate_package_is_uploaded: starting or restaging needs bits."""
    if app.droplet_guid is None and not any(
        p.state is PackageState.READY for p in await edge.cc(ListAppPackages(app.guid))
    ):
        raise ApiError(400, 150001, "CF-AppPackageInvalid", "The app package is invalid: bits have not been uploaded")


async def _update_app(request: web.Request) -> web.Response:
    """Attributes, scale (instances, memory, disk) and state, as V2 takes
    them in one body; STARTED stages first when the bits are newer."""
    edge = Edge(request)
    app = await _app_record(edge)
    body = await json_body(request)
    state = body.get("state")
    if state not in (None, "STARTED", "STOPPED"):
        raise ApiError(400, 100001, "CF-AppInvalid", "The app is invalid: state must be STARTED or STOPPED")
    if "name" in body and body["name"] != app.name:
        raise ApiError(400, 100001, "CF-AppInvalid", "The app is invalid: renaming is not supported")
    scale_keys = {"instances", "memory", "disk_quota"}
    rest = {k: v for k, v in body.items() if k not in scale_keys | {"state", "name", "space_guid"}}
    spec, given = _spec_of(edge, rest, app.name)
    if given:
        await edge.cc(CreateOrUpdateApp(spec, frozenset(given), actor=edge.user))
    scale, _ = _spec_of(edge, {k: body[k] for k in scale_keys if k in body}, app.name)
    if any(k in body for k in scale_keys):
        await edge.cc(
            ScaleApp(
                app.guid,
                scale.instances if "instances" in body else None,
                scale.memory_mb if "memory" in body else None,
                scale.disk_mb if "disk_quota" in body else None,
                actor=edge.user,
            ),
            timeout=60.0,
        )
    if state == "STARTED":
        await _check_bits(edge, app)
    if state == "STOPPED":
        await edge.cc(StopApp(app.guid, edge.user))
    elif state == "STARTED":
        edge.platform.system.tell("cloud_controller", StageAndStart(app.guid, edge.user))
    app = await _app_record(edge, app.guid)
    shown = _app_entity(edge, app, await _staging_view(edge, app))
    if state == "STARTED":
        shown["entity"]["state"] = "STARTED"  # desired now; the start itself goes on
    return _json(shown, status=201)


async def _delete_app(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    await edge.cc(DeleteApp(app.guid, edge.user), timeout=120.0)
    return web.Response(status=204)


async def _restage(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    await _check_bits(edge, app)
    edge.platform.system.tell("cloud_controller", StageAndStart(app.guid, edge.user))
    return _json(_app_entity(edge, app, ("PENDING", None)), status=201)


async def _staging(edge: Edge, app: AppRecord) -> bool:
    builds = await edge.cc(ListAppBuilds(app.guid))
    return any(b.state is BuildState.STAGING for b in builds)


async def _instances(request: web.Request) -> web.Response:
    """``{"0": {state, since, uptime}}``; while staging 400 NotStaged
    (170002), when stopped 400 InstancesError (220001): what V2 answers."""
    edge = Edge(request)
    app = await _app_record(edge)
    # As CC's instances_controller: a failed staging first, then one still to
    # come (or under way), then a stopped app.
    package_state, failed = await _staging_view(edge, app)
    if failed is not None:
        code, name, description = _staging_failure(failed)
        raise ApiError(400, code, f"CF-{name}", description)
    staging = await _staging(edge, app)
    if package_state == "PENDING" and (app.state is AppState.STARTED or staging):
        raise ApiError(400, 170002, "CF-NotStaged", "App has not finished staging")
    if app.state is AppState.STOPPED:
        raise ApiError(400, 220001, "CF-InstancesError", "Instances error: the app is stopped")
    if staging or app.process_guid is None:
        raise ApiError(400, 170002, "CF-NotStaged", "App has not finished staging")
    now = edge.clock.now()
    out = {}
    instances = await edge.cc(GetAppInstances(app.guid))
    if instances and all(i.state == "RUNNING" for i in instances):
        await edge.save_push_trace(app)
    for info in instances:
        out[str(info.index)] = {"state": info.state, "since": info.since, "uptime": max(0, int(now - info.since))}
    for index in range(app.instances):
        out.setdefault(str(index), {"state": "DOWN", "since": now, "uptime": 0})
    return _json(out)


async def _kill_instance(request: web.Request) -> web.Response:
    """cloudfoundry-client's `restart_instance`: the instance is stopped on
    its cell, and Diego starts it again (204), as CC's kill_instance."""
    edge = Edge(request)
    app = await _app_record(edge)
    raw = request.match_info["index"]
    index = int(raw) if raw.isdigit() else -1
    instances = await edge.cc(GetAppInstances(app.guid))
    target = next((i for i in instances if i.index == index and i.cell_id), None)
    if target is None or target.cell_id is None or app.process_guid is None:
        raise ApiError(400, 220001, "CF-InstancesError", f"Instances error: no instance {raw} of {app.name} runs")
    edge.platform.system.tell(target.cell_id, StopInstance(app.process_guid, index, "", "stopped by the API"))
    return web.Response(status=204)


async def _stats(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    if app.state is AppState.STOPPED:
        raise ApiError(400, 200003, "CF-AppStoppedStatsError", "Could not fetch stats for stopped app")
    now = edge.clock.now()
    mb = 1024 * 1024
    out = {}
    for info in await edge.cc(GetAppInstances(app.guid)):
        out[str(info.index)] = {
            "state": info.state,
            "stats": {
                "name": app.name,
                "uris": list(app.routes),
                "host": "10.0.0.1",
                "port": 61000 + info.index,
                "uptime": max(0, int(now - info.since)),
                "mem_quota": int(info.memory_quota_mb * mb),
                "disk_quota": int(info.disk_quota_mb * mb),
                "fds_quota": 16384,
                "usage": {
                    "time": iso(now),
                    "cpu": 0.001,
                    "mem": int(info.memory_usage_mb * mb),
                    "disk": int(info.disk_usage_mb * mb),
                },
            },
        }
    return _json(out)


async def _summary(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    instances = await edge.cc(GetAppInstances(app.guid)) if app.state is AppState.STARTED else ()
    entity = _app_entity(edge, app)["entity"]
    routes = []
    for url in app.routes:
        host, domain, path = split_route(url)
        routes.append(
            {
                "guid": route_guid(url),
                "host": host,
                "path": path,
                "port": None,
                "domain": {"guid": DOMAIN_GUID, "name": domain},
            }
        )
    summary = {
        "guid": app.guid,
        **{k: v for k, v in entity.items() if not k.endswith("_url")},
        "running_instances": sum(1 for i in instances if i.state == "RUNNING"),
        "routes": routes,
        "services": [],
        "available_domains": [{"guid": DOMAIN_GUID, "name": DEFAULT_DOMAIN, "owning_organization_guid": None}],
    }
    return _json(summary)


async def _env(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    return _json(
        {
            "staging_env_json": {},
            "running_env_json": {},
            "environment_json": dict(app.env),
            "system_env_json": {"VCAP_SERVICES": {}},
            "application_env_json": {
                "VCAP_APPLICATION": {
                    "application_id": app.guid,
                    "application_name": app.name,
                    "application_uris": list(app.routes),
                    "space_name": edge.names.space,
                    "limits": {"mem": app.memory_mb, "disk": app.disk_mb},
                }
            },
        }
    )


# --- routes -------------------------------------------------------------------------------------------------


def _route_entity(edge: Edge, url: str) -> dict[str, Any]:
    host, domain, path = split_route(url)
    g = route_guid(url)
    return _resource(
        g,
        f"/v2/routes/{g}",
        {
            "host": host,
            "path": path,
            "domain_guid": DOMAIN_GUID if domain == DEFAULT_DOMAIN else named_guid("domain", domain),
            "space_guid": edge.names.space_guid,
            "service_instance_guid": None,
            "port": None,
            "domain_url": f"/v2/shared_domains/{DOMAIN_GUID}",
            "space_url": f"/v2/spaces/{edge.names.space_guid}",
            "apps_url": f"/v2/routes/{g}/apps",
        },
    )


async def _route_urls(edge: Edge) -> list[tuple[str, tuple[str, ...]]]:
    return await edge.cc(ListRoutes())


async def _routes(request: web.Request) -> web.Response:
    edge = Edge(request)
    if "guid" in request.match_info:
        _check_space(edge, request.match_info["guid"])
    filters = _filters(request)
    urls = []
    for url, _apps in await _route_urls(edge):
        host, domain, path = split_route(url)
        values = {
            "host": host,
            "path": path,
            "domain_guid": DOMAIN_GUID if domain == DEFAULT_DOMAIN else named_guid("domain", domain),
            "space_guid": edge.names.space_guid,
            "organization_guid": edge.names.org_guid,
            "port": None,
            "guid": route_guid(url),
        }
        if _matches(values, filters):
            urls.append(url)
    return _page(request, urls, lambda u: _route_entity(edge, u))


async def _route_url(edge: Edge, guid: str) -> tuple[str, tuple[str, ...]]:
    for url, apps in await _route_urls(edge):
        if route_guid(url) == guid:
            return url, apps
    raise _not_found("Route", guid, 210002)


async def _route(request: web.Request) -> web.Response:
    edge = Edge(request)
    url, _ = await _route_url(edge, request.match_info["guid"])
    return _json(_route_entity(edge, url))


async def _delete_route(request: web.Request) -> web.Response:
    """Unmapped from every app, then gone (204)."""
    edge = Edge(request)
    url, _ = await _route_url(edge, request.match_info["guid"])
    await edge.cc(DeleteRoute(url, edge.user), timeout=60.0)
    return web.Response(status=204)


async def _create_route(request: web.Request) -> web.Response:
    edge = Edge(request)
    body = await json_body(request)
    if body.get("domain_guid") != DOMAIN_GUID:
        raise ApiError(404, 130002, "CF-DomainNotFound", f"The domain could not be found: {body.get('domain_guid')}")
    _check_space(edge, str(body.get("space_guid")))
    host = body.get("host") or ""
    path = body.get("path") or ""
    if not isinstance(host, str) or not isinstance(path, str) or (path and not path.startswith("/")):
        raise ApiError(400, 210001, "CF-RouteInvalid", "The route is invalid: host must be a string, path start with /")
    url = f"{host}.{DEFAULT_DOMAIN}{path}" if host else f"{DEFAULT_DOMAIN}{path}"
    if any(u == url.lower() for u, _ in await _route_urls(edge)):
        raise ApiError(400, 210003, "CF-RouteHostTaken", f"The host is taken: {host}")
    try:
        created = await edge.cc(CreateRoute(url))
    except ApiError as exc:
        raise ApiError(400, 210001, "CF-RouteInvalid", f"The route is invalid: {exc.detail}") from None
    return _json(_route_entity(edge, created), status=201)


async def _app_routes(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    return _page(request, list(app.routes), lambda u: _route_entity(edge, u))


async def _map_route(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    url, _ = await _route_url(edge, request.match_info["route"])
    app = await edge.cc(MapRoute(app.guid, url, edge.user))
    return _json(_app_entity(edge, app), status=201)


async def _unmap_route(request: web.Request) -> web.Response:
    edge = Edge(request)
    app = await _app_record(edge)
    url, _ = await _route_url(edge, request.match_info["route"])
    await edge.cc(UnmapRoute(app.guid, url, edge.user))
    return web.Response(status=204)


# --- bits and jobs ------------------------------------------------------------------------------------------


async def _resource_match(request: web.Request) -> web.Response:
    edge = Edge(request)
    raw = await read_body(request, 64 * 1024 * 1024)
    try:
        wanted = json.loads(raw) if raw else None
    except ValueError:
        wanted = None
    if not isinstance(wanted, list):
        raise ApiError(
            400, 1001, "CF-MessageParseError", "Request invalid due to parse error: a JSON array of {sha1, size}"
        )
    pairs = []
    for entry in wanted:
        sha1 = entry.get("sha1") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(sha1, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ApiError(
                400, 1001, "CF-MessageParseError", "Request invalid due to parse error: each entry needs sha1 and size"
            )
        pairs.append((sha1, size))
    held = await edge.cc(MatchResources(tuple(pairs)))
    return _json([{"sha1": sha1, "size": size} for sha1, size in held])


def _job_entity(guid: str, state: str, errors: tuple[tuple[int, str, str], ...] = ()) -> dict[str, Any]:
    status = {"COMPLETE": "finished", "FAILED": "failed"}.get(state, "running")
    entity: dict[str, Any] = {"guid": guid, "status": status}
    if errors:
        code, title, detail = errors[0]
        entity["error"] = detail
        entity["error_details"] = {"code": code, "description": detail, "error_code": title}
    return {"metadata": {"guid": guid, "created_at": iso(EPOCH), "url": f"/v2/jobs/{guid}"}, "entity": entity}


async def _upload_bits(request: web.Request) -> web.Response:
    """The app's bits (`resources` JSON of matched files, `application` zip):
    a new package, READY; the answer is a job, finished."""
    edge = Edge(request)
    app = await _app_record(edge)
    matched, archive = await receive_upload(edge, "application", v2=True)
    try:
        package = await edge.cc(CreatePackage(app.guid, edge.user))
        await edge.upload(UploadPackage(package.guid, str(archive) if archive else None, matched, edge.user))
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
    job = await edge.cc(RecordJob("app.upload_bits", "app", app.guid))
    return _json(_job_entity(job.guid, job.state, job.errors), status=201)


async def _job(request: web.Request) -> web.Response:
    edge = Edge(request)
    try:
        job = await edge.cc(ShowJob(request.match_info["guid"]))
    except ApiError:
        raise _not_found("Job", request.match_info["guid"], 10010) from None
    return _json(_job_entity(job.guid, job.state, job.errors))
