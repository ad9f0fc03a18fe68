"""Cloud Controller's V3 resources as its presenters write them, from the
platform's records (shapes per DESIGN.md section 8). Everything the edge
shows is derived here from a record and the request's base URL: the org,
space, domain, stacks and routes have names, and their guids are named
after them (uuid5), so they are the same in every process."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from protocol.lrp import InstanceInfo
from protocol.manifest import DEFAULT_DOMAIN
from protocol.records import AppRecord, BuildRecord, DropletRecord, EventRecord, JobRecord, PackageRecord
from protocol.states import AppState, BuildState, HealthCheckType

__all__ = [
    "DOMAIN_GUID",
    "Names",
    "iso",
    "paginate",
    "route_guid",
    "split_route",
]

_NS = uuid.NAMESPACE_URL
DOMAIN_GUID = str(uuid.uuid5(_NS, f"minifoundry:domain:{DEFAULT_DOMAIN}"))
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # when the platform's fixed resources "were created"


def named_guid(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"minifoundry:{kind}:{name}"))


def route_guid(url: str) -> str:
    """A route's guid, named after its URL (host.domain[/path])."""
    return named_guid("route", url)


def iso(when: datetime | float | None) -> str | None:
    """CC's timestamps: ISO 8601, UTC, whole seconds, ``Z``."""
    if when is None:
        return None
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_route(url: str) -> tuple[str, str, str]:
    """(host, domain, path) of ``host.domain[/path]`` (the shared domain when it matches)."""
    path = ""
    if "/" in url:
        url, rest = url.split("/", 1)
        path = "/" + rest
    if url.endswith("." + DEFAULT_DOMAIN):
        return url[: -len(DEFAULT_DOMAIN) - 1], DEFAULT_DOMAIN, path
    host, _, domain = url.partition(".")
    return host, domain, path


def _meta() -> dict[str, Any]:
    return {"labels": {}, "annotations": {}}


class Names:
    """The fixed resources of the one org and space, and the presenters,
    for one request's base URL (every href is absolute)."""

    def __init__(self, base: str, org: str, space: str, stacks: Sequence[str]) -> None:
        self.base = base
        self.org = org
        self.space = space
        self.stacks = tuple(stacks)
        self.org_guid = named_guid("org", org)
        self.space_guid = named_guid("space", f"{org}/{space}")
        self.quota_guid = named_guid("quota", "default")

    def href(self, path: str) -> dict[str, str]:
        return {"href": f"{self.base}{path}"}

    # --- fixed resources --------------------------------------------------------------------

    def organization(self) -> dict[str, Any]:
        g = self.org_guid
        return {
            "guid": g,
            "created_at": iso(EPOCH),
            "updated_at": iso(EPOCH),
            "name": self.org,
            "suspended": False,
            "relationships": {"quota": {"data": {"guid": self.quota_guid}}},
            "metadata": _meta(),
            "links": {
                "self": self.href(f"/v3/organizations/{g}"),
                "domains": self.href(f"/v3/organizations/{g}/domains"),
                "default_domain": self.href(f"/v3/organizations/{g}/domains/default"),
                "quota": self.href(f"/v3/organization_quotas/{self.quota_guid}"),
            },
        }

    def space_resource(self) -> dict[str, Any]:
        g = self.space_guid
        return {
            "guid": g,
            "created_at": iso(EPOCH),
            "updated_at": iso(EPOCH),
            "name": self.space,
            "suspended": False,
            "relationships": {"organization": {"data": {"guid": self.org_guid}}, "quota": {"data": None}},
            "metadata": _meta(),
            "links": {
                "self": self.href(f"/v3/spaces/{g}"),
                "organization": self.href(f"/v3/organizations/{self.org_guid}"),
                "features": self.href(f"/v3/spaces/{g}/features"),
                "apply_manifest": {**self.href(f"/v3/spaces/{g}/actions/apply_manifest"), "method": "POST"},
            },
        }

    def domain(self) -> dict[str, Any]:
        return {
            "guid": DOMAIN_GUID,
            "created_at": iso(EPOCH),
            "updated_at": iso(EPOCH),
            "name": DEFAULT_DOMAIN,
            "internal": False,
            "router_group": None,
            "supported_protocols": ["http"],
            "metadata": _meta(),
            "relationships": {"organization": {"data": None}, "shared_organizations": {"data": []}},
            "links": {
                "self": self.href(f"/v3/domains/{DOMAIN_GUID}"),
                "route_reservations": self.href(f"/v3/domains/{DOMAIN_GUID}/route_reservations"),
            },
        }

    def stack(self, name: str) -> dict[str, Any]:
        g = named_guid("stack", name)
        return {
            "guid": g,
            "created_at": iso(EPOCH),
            "updated_at": iso(EPOCH),
            "name": name,
            "description": f"Cloud Foundry Linux-based filesystem ({name})",
            "state": "ACTIVE",
            "state_reason": None,
            "build_rootfs_image": name,
            "run_rootfs_image": name,
            "default": name == self.stacks[0],
            "metadata": _meta(),
            "links": {"self": self.href(f"/v3/stacks/{g}")},
        }

    # --- apps and their process -------------------------------------------------------------

    def app(self, app: AppRecord) -> dict[str, Any]:
        g = app.guid
        a = f"/v3/apps/{g}"
        return {
            "guid": g,
            "created_at": iso(app.created_at),
            "updated_at": iso(app.updated_at),
            "name": app.name,
            "state": app.state.value,
            "lifecycle": {"type": "buildpack", "data": {"buildpacks": list(app.buildpacks), "stack": app.stack}},
            "relationships": {
                "space": {"data": {"guid": self.space_guid}},
                "current_droplet": {"data": {"guid": app.droplet_guid}},
            },
            "metadata": _meta(),
            "links": {
                "self": self.href(a),
                "environment_variables": self.href(f"{a}/environment_variables"),
                "space": self.href(f"/v3/spaces/{self.space_guid}"),
                "processes": self.href(f"{a}/processes"),
                "packages": self.href(f"{a}/packages"),
                "current_droplet": self.href(f"{a}/droplets/current"),
                "droplets": self.href(f"{a}/droplets"),
                "tasks": self.href(f"{a}/tasks"),
                "start": {**self.href(f"{a}/actions/start"), "method": "POST"},
                "stop": {**self.href(f"{a}/actions/stop"), "method": "POST"},
                "revisions": self.href(f"{a}/revisions"),
                "deployed_revisions": self.href(f"{a}/revisions/deployed"),
                "features": self.href(f"{a}/features"),
            },
        }

    def process(self, app: AppRecord) -> dict[str, Any]:
        """The app's web process (its guid is the app's, as in Cloud Controller)."""
        g = app.guid
        data: dict[str, Any] = {"timeout": app.health_check_timeout, "invocation_timeout": None, "interval": None}
        if app.health_check_type is HealthCheckType.HTTP:
            data["endpoint"] = app.health_check_http_endpoint or "/"
        return {
            "guid": g,
            "created_at": iso(app.created_at),
            "updated_at": iso(app.updated_at),
            "version": app.process_version or named_guid("process-version", g),
            "type": "web",
            "command": app.command,
            "user": "vcap",
            "instances": app.instances,
            "memory_in_mb": app.memory_mb,
            "disk_in_mb": app.disk_mb,
            "log_rate_limit_in_bytes_per_second": -1,
            "health_check": {"type": app.health_check_type.value, "data": data},
            "readiness_health_check": {"type": "process", "data": {"invocation_timeout": None, "interval": None}},
            "relationships": {"app": {"data": {"guid": g}}, "revision": None},
            "metadata": _meta(),
            "links": {
                "self": self.href(f"/v3/processes/{g}"),
                "scale": {**self.href(f"/v3/processes/{g}/actions/scale"), "method": "POST"},
                "app": self.href(f"/v3/apps/{g}"),
                "space": self.href(f"/v3/spaces/{self.space_guid}"),
                "stats": self.href(f"/v3/processes/{g}/stats"),
            },
        }

    def stats(self, app: AppRecord, instances: Iterable[InstanceInfo], now: float) -> dict[str, Any]:
        """One entry per instance index, `max(desired, reported)` of them:
        an index nobody runs is DOWN (the reduced shape); sizes are bytes."""
        by_index = {i.index: i for i in instances}
        count = max([app.instances, *(i + 1 for i in by_index)]) if by_index or app.instances else 0
        resources = []
        mb = 1024 * 1024
        for index in range(count):
            info = by_index.get(index)
            if info is None or app.state is AppState.STOPPED:
                resources.append(
                    {
                        "type": "web",
                        "index": index,
                        "state": "DOWN",
                        "routable": None,
                        "uptime": None,
                        "isolation_segment": None,
                        "details": None,
                    }
                )
                continue
            running = info.state == "RUNNING"
            resources.append(
                {
                    "type": "web",
                    "index": index,
                    "instance_guid": named_guid("instance", f"{app.guid}/{index}/{info.since}"),
                    "state": info.state,
                    "routable": running,
                    "host": "10.0.0.1" if info.cell_id else None,
                    "instance_internal_ip": None,
                    "uptime": max(0, int(now - info.since)) if running else 0,
                    "mem_quota": max(0, int(info.memory_quota_mb * mb)),
                    "disk_quota": max(0, int(info.disk_quota_mb * mb)),
                    "log_rate_limit": 16384,
                    "fds_quota": 16384,
                    "isolation_segment": None,
                    "details": info.details or None,
                    "instance_ports": [],
                    "usage": {
                        "time": iso(now),
                        "cpu": 0.001 if running else 0.0,
                        "cpu_entitlement": 0.01 if running else 0.0,
                        "mem": max(0, int(info.memory_usage_mb * mb)),
                        "disk": max(0, int(info.disk_usage_mb * mb)),
                        "log_rate": 0,
                    },
                }
            )
        return {"resources": resources}

    # --- bits, builds, droplets ---------------------------------------------------------------

    def package(self, p: PackageRecord) -> dict[str, Any]:
        g = p.guid
        return {
            "guid": g,
            "created_at": iso(p.created_at),
            "updated_at": iso(p.updated_at),
            "type": "bits",
            "data": {"error": None, "checksum": {"type": "sha256", "value": p.blob_key}},
            "state": p.state.value,
            "relationships": {"app": {"data": {"guid": p.app_guid}}},
            "metadata": _meta(),
            "links": {
                "self": self.href(f"/v3/packages/{g}"),
                "upload": {**self.href(f"/v3/packages/{g}/upload"), "method": "POST"},
                "download": self.href(f"/v3/packages/{g}/download"),
                "app": self.href(f"/v3/apps/{p.app_guid}"),
            },
        }

    def build(
        self, b: BuildRecord, app: AppRecord | None = None, *, shown_state: BuildState | None = None
    ) -> dict[str, Any]:
        state = shown_state or b.state
        staged = state is BuildState.STAGED and b.droplet_guid is not None
        links = {"self": self.href(f"/v3/builds/{b.guid}"), "app": self.href(f"/v3/apps/{b.app_guid}")}
        if staged:
            links["droplet"] = self.href(f"/v3/droplets/{b.droplet_guid}")
        return {
            "guid": b.guid,
            "created_at": iso(b.created_at),
            "updated_at": iso(b.updated_at),
            "state": state.value,
            "staging_memory_in_mb": b.staging_memory_mb,
            "staging_disk_in_mb": b.staging_disk_mb,
            "staging_log_rate_limit_bytes_per_second": -1,
            "error": b.error if state is BuildState.FAILED else None,
            "lifecycle": {
                "type": "buildpack",
                "data": {
                    "buildpacks": list(app.buildpacks) if app else [],
                    "stack": app.stack if app else self.stacks[0],
                },
            },
            "package": {"guid": b.package_guid},
            "droplet": {"guid": b.droplet_guid} if staged else None,
            "created_by": {"guid": named_guid("user", b.created_by), "name": b.created_by, "email": b.created_by},
            "relationships": {"app": {"data": {"guid": b.app_guid}}},
            "metadata": _meta(),
            "links": links,
        }

    def droplet(self, d: DropletRecord, stack: str | None = None) -> dict[str, Any]:
        g = d.guid
        detected = d.detected_buildpack or ""
        return {
            "guid": g,
            "created_at": iso(d.created_at),
            "updated_at": iso(d.updated_at),
            "state": d.state.value,
            "error": None,
            "lifecycle": {"type": "buildpack", "data": {}},
            "checksum": {"type": "sha256", "value": d.blob_key},
            "buildpacks": [
                {
                    "name": name,
                    "detect_output": detected if name == (d.buildpacks[-1] if d.buildpacks else None) else None,
                    "buildpack_name": name.removesuffix("_buildpack"),
                    "version": None,
                }
                for name in d.buildpacks
            ],
            "stack": stack or self.stacks[0],
            "image": None,
            "execution_metadata": "",
            "process_types": dict(d.process_types) or ({"web": d.start_command} if d.start_command else {}),
            "relationships": {"app": {"data": {"guid": d.app_guid}}},
            "metadata": _meta(),
            "links": {
                "self": self.href(f"/v3/droplets/{g}"),
                "package": self.href(f"/v3/packages/{d.package_guid}"),
                "app": self.href(f"/v3/apps/{d.app_guid}"),
                "assign_current_droplet": {
                    **self.href(f"/v3/apps/{d.app_guid}/relationships/current_droplet"),
                    "method": "PATCH",
                },
                "download": self.href(f"/v3/droplets/{g}/download"),
            },
        }

    # --- routes, jobs, events -----------------------------------------------------------------

    def route(self, url: str, app_guids: Sequence[str], created: datetime | None = None) -> dict[str, Any]:
        g = route_guid(url)
        host, domain, path = split_route(url)
        domain_guid = DOMAIN_GUID if domain == DEFAULT_DOMAIN else named_guid("domain", domain)
        return {
            "guid": g,
            "created_at": iso(created or EPOCH),
            "updated_at": iso(created or EPOCH),
            "protocol": "http",
            "host": host,
            "path": path,
            "port": None,
            "url": url,
            "destinations": [
                {
                    "guid": named_guid("destination", f"{url}/{a}"),
                    "app": {"guid": a, "process": {"type": "web"}},
                    "weight": None,
                    "port": 8080,
                    "protocol": "http1",
                }
                for a in app_guids
            ],
            "options": {},
            "metadata": _meta(),
            "relationships": {
                "space": {"data": {"guid": self.space_guid}},
                "domain": {"data": {"guid": domain_guid}},
            },
            "links": {
                "self": self.href(f"/v3/routes/{g}"),
                "space": self.href(f"/v3/spaces/{self.space_guid}"),
                "destinations": self.href(f"/v3/routes/{g}/destinations"),
                "domain": self.href(f"/v3/domains/{domain_guid}"),
            },
        }

    def job(self, j: JobRecord) -> dict[str, Any]:
        return {
            "guid": j.guid,
            "created_at": iso(j.created_at),
            "updated_at": iso(j.updated_at),
            "operation": j.operation,
            "state": j.state,
            "errors": [{"code": c, "title": t, "detail": d} for c, t, d in j.errors],
            "warnings": [{"detail": w} for w in j.warnings],
            "links": {
                "self": self.href(f"/v3/jobs/{j.guid}"),
                j.resource_type: self.href(f"/v3/{j.resource_type}s/{j.resource_guid}"),
            },
        }

    def event(self, ev: EventRecord) -> dict[str, Any]:
        return {
            "guid": ev.guid,
            "created_at": iso(ev.time),
            "updated_at": iso(ev.time),
            "type": ev.type,
            "actor": {"guid": named_guid("user", ev.actor), "type": "user", "name": ev.actor},
            "target": {"guid": ev.actee_guid, "type": "app", "name": ev.actee_name or ""},
            "data": dict(ev.metadata),
            "space": {"guid": self.space_guid},
            "organization": {"guid": self.org_guid},
            "links": {"self": self.href(f"/v3/audit_events/{ev.guid}")},
        }


# One requirement of a label selector, as CC parses it: `key`, `!key`,
# `key=v` / `key==v`, `key!=v`, `key in (v1,v2)`, `key notin (v1,v2)`.
_KEY = r"(?:[a-z0-9A-Z.-]{1,253}/)?[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_VALUE = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"(?P<absent>!)?(?P<key>{_KEY})"
    rf"(?:(?P<op>==|!=|=)(?P<value>{_VALUE})|\s+(?P<set>in|notin)\s+\((?P<values>{_VALUE}(?:,{_VALUE})*)\))?"
)


def matches_unlabelled(selector: str) -> bool:
    """Whether a resource with no labels (every one here: labels are not
    kept) meets `selector`: only `!key`, `key!=v` and `key notin (...)` hold.
    A malformed selector is CC's BadQueryParameter."""
    from actors.api.errors import bad_query

    # Split on the commas outside parentheses; empty pieces (a trailing comma) are none.
    requirements = [piece for piece in re.split(r",(?![^(]*\))", selector) if piece.strip()]
    if not requirements:
        raise bad_query("Invalid label_selector value")
    holds = True
    for text in requirements:
        m = _REQUIREMENT.fullmatch(text.strip())
        if not text.strip() or m is None or (m["absent"] and (m["op"] or m["set"])):
            raise bad_query("Invalid label_selector value")
        if m["absent"] or m["op"] == "!=" or m["set"] == "notin":
            continue
        holds = False
    return holds


def paginate(
    base: str,
    path: str,
    query: Mapping[str, str],
    items: Sequence[Any],
    render: Callable[[Any], Any],
    *,
    default_per_page: int = 50,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """CC's paginated list: `page`/`per_page` from the query (1..5000), the
    other parameters kept in the links, `next`/`previous` absolute or null."""
    from actors.api.errors import bad_query

    def number(key: str, default: int, top: int | None) -> int:
        raw = query.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad_query(f"{key.replace('_', ' ').capitalize()} must be an integer") from None
        if value < 1 or (top is not None and value > top):
            what = key.replace("_", " ").capitalize()
            raise bad_query(f"{what} must be between 1 and {top}" if top else f"{what} must be greater than 0")
        return value

    per_page = number("per_page", default_per_page, 5000)
    if "label_selector" in query and not matches_unlabelled(query["label_selector"]):
        items = ()
    page = number("page", 1, None)
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    kept = {k: v for k, v in sorted(query.items()) if k not in ("page", "per_page")}

    def link(n: int) -> dict[str, str]:
        return {"href": f"{base}{path}?{urlencode({**kept, 'page': n, 'per_page': per_page})}"}

    chunk = items[(page - 1) * per_page : page * per_page]
    out: dict[str, Any] = {
        "pagination": {
            "total_results": total,
            "total_pages": pages,
            "first": link(1),
            "last": link(pages),
            "next": link(page + 1) if page < pages else None,
            "previous": link(page - 1) if page > 1 else None,
        },
        "resources": [render(x) for x in chunk],
    }
    if extra:
        out.update(extra)
    return out
