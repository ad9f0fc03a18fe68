"""The org- and space-level resources cf v8 reads around its everyday
commands (`org`, `space`, `routes`, `quotas`, `buildpacks`, `feature-flags`,
`delete-orphaned-routes`), as a platform of one org and one space has them:
its quota, its buildpacks, Cloud Controller's feature flags, and the
services, isolation segments and security groups it does not have (empty
lists and null relationships, the answers cf expects for "none")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from actors.api.context import Edge
from actors.api.errors import ApiError, not_found
from actors.api.present import EPOCH, iso, named_guid, paginate
from protocol.buildpacks import BUILDPACK_NAMES, BUILDPACK_VERSIONS
from protocol.messages import DeleteRoute, ListRoutes, RecordJob
from protocol.quota import UNLIMITED, QuotaDefinition

__all__ = ["FEATURE_FLAGS", "add_routes"]

#: Cloud Controller's feature flags and their defaults (`diego_docker` off:
#: Docker apps are refused, as here).
FEATURE_FLAGS = {
    "user_org_creation": False,
    "private_domain_creation": True,
    "app_bits_upload": True,
    "app_scaling": True,
    "route_creation": True,
    "service_instance_creation": True,
    "diego_docker": False,
    "set_roles_by_username": True,
    "unset_roles_by_username": True,
    "task_creation": True,
    "env_var_visibility": True,
    "space_scoped_private_broker_creation": True,
    "space_developer_env_var_visibility": True,
    "service_instance_sharing": False,
    "hide_marketplace_from_unauthenticated_users": False,
    "resource_matching": True,
    "route_sharing": False,
    "diego_cnb": False,
}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v3/organization_quotas", _quotas)
    r.add_get("/v3/organization_quotas/{guid}", _quota)
    r.add_get("/v3/organizations/{guid}/relationships/default_isolation_segment", _org_isolation_segment)
    r.add_get("/v3/spaces/{guid}/relationships/isolation_segment", _space_isolation_segment)
    r.add_get("/v3/spaces/{guid}/running_security_groups", _space_list)
    r.add_get("/v3/spaces/{guid}/staging_security_groups", _space_list)
    r.add_delete("/v3/spaces/{guid}/routes", _delete_unmapped_routes)
    r.add_get("/v3/isolation_segments", _none)
    r.add_get("/v3/security_groups", _none)
    r.add_get("/v3/service_instances", _none)
    r.add_get("/v3/service_credential_bindings", _none)
    r.add_get("/v3/service_route_bindings", _route_bindings)
    r.add_get("/v3/buildpacks", _buildpacks)
    r.add_get("/v3/feature_flags", _feature_flags)
    r.add_get("/v3/feature_flags/{name}", _feature_flag)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _list(edge: Edge, items: list[Any], render: Callable[[Any], Any], **extra: Any) -> web.Response:
    return _json(paginate(edge.base, edge.request.path, edge.query(), items, render, extra=extra or None))


async def _none(request: web.Request) -> web.Response:
    """A kind of resource this platform has none of."""
    return _list(Edge(request), [], lambda x: x)


async def _route_bindings(request: web.Request) -> web.Response:
    edge = Edge(request)
    included: dict[str, list[Any]] = (
        {"service_instances": []} if "service_instance" in request.query.get("include", "") else {}
    )
    return _list(edge, [], lambda x: x, **({"included": included} if included else {}))


# --- the org's quota ---------------------------------------------------------------------------


def _limit(value: int) -> int | None:
    return None if value == UNLIMITED else value


def _quota_resource(edge: Edge, quota: QuotaDefinition) -> dict[str, Any]:
    g = edge.names.quota_guid
    return {
        "guid": g,
        "created_at": iso(EPOCH),
        "updated_at": iso(EPOCH),
        "name": quota.name,
        "apps": {
            "total_memory_in_mb": _limit(quota.memory_limit_mb),
            "per_process_memory_in_mb": _limit(quota.instance_memory_limit_mb),
            "total_instances": _limit(quota.app_instance_limit),
            "per_app_tasks": None,
            "log_rate_limit_in_bytes_per_second": None,
        },
        "services": {
            "paid_services_allowed": True,
            "total_service_instances": _limit(quota.total_services),
            "total_service_keys": None,
        },
        "routes": {"total_routes": _limit(quota.total_routes), "total_reserved_ports": 0},
        "domains": {"total_domains": None},
        "relationships": {"organizations": {"data": [{"guid": edge.names.org_guid}]}},
        "links": {"self": edge.names.href(f"/v3/organization_quotas/{g}")},
    }


def _the_quota(edge: Edge) -> QuotaDefinition:
    quota: QuotaDefinition = edge.platform.config.controller_config().quota
    return quota


async def _quotas(request: web.Request) -> web.Response:
    edge = Edge(request)
    quota = _the_quota(edge)
    names, guids = edge.query_list("names"), edge.query_list("guids")
    orgs = edge.query_list("organization_guids")
    keep = (
        (names is None or quota.name in names)
        and (guids is None or edge.names.quota_guid in guids)
        and (orgs is None or edge.names.org_guid in orgs)
    )
    return _list(edge, [quota] if keep else [], lambda q: _quota_resource(edge, q))


async def _quota(request: web.Request) -> web.Response:
    edge = Edge(request)
    if request.match_info["guid"] != edge.names.quota_guid:
        raise not_found("Organization quota")
    return _json(_quota_resource(edge, _the_quota(edge)))


# --- isolation segments and security groups: none ------------------------------------------------


async def _org_isolation_segment(request: web.Request) -> web.Response:
    edge = Edge(request)
    g = request.match_info["guid"]
    if g != edge.names.org_guid:
        raise not_found("Organization")
    link = edge.names.href(f"/v3/organizations/{g}/relationships/default_isolation_segment")
    return _json({"data": None, "links": {"self": link}})


def _check_space(edge: Edge) -> str:
    g = edge.request.match_info["guid"]
    if g != edge.names.space_guid:
        raise not_found("Space")
    return g


async def _space_isolation_segment(request: web.Request) -> web.Response:
    edge = Edge(request)
    g = _check_space(edge)
    return _json({"data": None, "links": {"self": edge.names.href(f"/v3/spaces/{g}/relationships/isolation_segment")}})


async def _space_list(request: web.Request) -> web.Response:
    edge = Edge(request)
    _check_space(edge)
    return _list(edge, [], lambda x: x)


async def _delete_unmapped_routes(request: web.Request) -> web.Response:
    """`cf delete-orphaned-routes`: every route of the space no app is mapped to (202, a job)."""
    edge = Edge(request)
    g = _check_space(edge)
    if request.query.get("unmapped") != "true":
        raise ApiError(
            422,
            10008,
            "CF-UnprocessableEntity",
            "Mass delete not supported for mapped routes. Use 'unmapped=true' parameter to delete all unmapped routes.",
        )
    routes: list[tuple[str, tuple[str, ...]]] = await edge.cc(ListRoutes())
    for url, apps in routes:
        if not apps:
            # Only if still unmapped when Cloud Controller deletes it: a push
            # that maps it meanwhile keeps it.
            await edge.cc(DeleteRoute(url, edge.user, only_if_unmapped=True), timeout=60.0)
    job = await edge.cc(RecordJob("space.delete_unmapped_routes", "space", g))
    return web.Response(status=202, headers={"Location": f"{edge.base}/v3/jobs/{job.guid}"})


# --- buildpacks and feature flags ------------------------------------------------------------------


def _buildpack(edge: Edge, position: int, name: str) -> dict[str, Any]:
    g = named_guid("buildpack", name)
    return {
        "guid": g,
        "created_at": iso(EPOCH),
        "updated_at": iso(EPOCH),
        "name": name,
        "stack": edge.names.stacks[0] if edge.names.stacks else None,
        "state": "READY",
        "filename": f"{name}-v{BUILDPACK_VERSIONS[name]}.zip",
        "position": position,
        "enabled": True,
        "locked": False,
        "lifecycle": "buildpack",
        "metadata": {"labels": {}, "annotations": {}},
        "links": {
            "self": edge.names.href(f"/v3/buildpacks/{g}"),
            "upload": {"href": f"{edge.base}/v3/buildpacks/{g}/upload", "method": "POST"},
        },
    }


async def _buildpacks(request: web.Request) -> web.Response:
    edge = Edge(request)
    names = edge.query_list("names")
    stacks = edge.query_list("stacks")
    stack = edge.names.stacks[0] if edge.names.stacks else None
    listed = [
        (position, name)
        for position, name in enumerate(BUILDPACK_NAMES, 1)
        if (names is None or name in names) and (stacks is None or stack in stacks)
    ]
    return _list(edge, listed, lambda item: _buildpack(edge, *item))


def _flag(edge: Edge, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "enabled": FEATURE_FLAGS[name],
        "updated_at": None,
        "custom_error_message": None,
        "links": {"self": edge.names.href(f"/v3/feature_flags/{name}")},
    }


async def _feature_flags(request: web.Request) -> web.Response:
    edge = Edge(request)
    return _list(edge, sorted(FEATURE_FLAGS), lambda name: _flag(edge, name))


async def _feature_flag(request: web.Request) -> web.Response:
    edge = Edge(request)
    name = request.match_info["name"]
    if name not in FEATURE_FLAGS:
        raise not_found("Feature flag")
    return _json(_flag(edge, name))
