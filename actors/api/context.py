"""What every handler of the API shares: the platform behind it, the
request's base URL and user, and asking Cloud Controller (or another
component) the way the cli does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from actors.api.errors import ApiError, from_exception, parse_error, unprocessable
from actors.api.present import Names
from actors.runtime.delivery import current_trace
from protocol.errors import BlobCorrupt, BlobNotFound
from protocol.messages import SaveTrace
from protocol.records import DELIVERY_FIELDS

__all__ = [
    "BASE_URL",
    "MAX_BODY_BYTES",
    "PLATFORM",
    "STARTS",
    "STEPS",
    "TRACE",
    "USER",
    "Edge",
    "RequestTrace",
    "dig",
    "json_body",
    "known_fields",
    "read_body",
]

MAX_BODY_BYTES = 1024 * 1024  # JSON and YAML bodies; uploads stream apart
#: The application's platform, and the function giving its base URL.
PLATFORM: web.AppKey[Any] = web.AppKey("platform", object)
BASE_URL: web.AppKey[Callable[[], str]] = web.AppKey("base_url")
#: The user a request's token names.
USER: web.RequestKey[str] = web.RequestKey("user", str)


class RequestTrace:
    """Which conversation a request's messages join: its own (``http:N``)
    until it is known to be about an app, then the app's API push trace
    (``api:<guid>``), which `cf trace APP` shows once the app runs."""

    def __init__(self, request_id: str, trace_id: str) -> None:
        self.request_id = request_id
        self.trace_id = trace_id


TRACE: web.RequestKey[RequestTrace] = web.RequestKey("trace", RequestTrace)
#: The steps of the seed (DESIGN.md section 3) an API call takes part in.
STEPS = {
    "POST /v3/spaces/{guid}/actions/apply_manifest": 2,
    "POST /v3/apps": 2,
    "POST /v2/apps": 2,
    "PUT /v2/apps/{guid}": 2,
    "POST /v3/resource_matches": 4,
    "PUT /v2/resource_match": 4,
    "POST /v3/packages": 4,
    "POST /v3/packages/{guid}/upload": 4,
    "PUT /v2/apps/{guid}/bits": 4,
    "POST /v3/builds": 6,
    "PATCH /v3/apps/{guid}/relationships/current_droplet": 10,
    "POST /v3/apps/{guid}/actions/start": 11,
    "POST /v3/apps/{guid}/actions/restart": 11,
    "GET /v3/processes/{guid}/stats": 12,
    "GET /v2/apps/{guid}/instances": 12,
}
#: The calls that start an app's instances: a push through the API ends with them.
STARTS = frozenset(
    {"POST /v3/apps/{guid}/actions/start", "POST /v3/apps/{guid}/actions/restart", "PUT /v2/apps/{guid}"}
)
# Where a delivery row holds its seq and its label.
_SEQ, _LABEL = DELIVERY_FIELDS.index("seq"), DELIVERY_FIELDS.index("label")


class Edge:
    """One request's view of the platform."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.platform = request.app[PLATFORM]
        self.base: str = request.app[BASE_URL]()
        cc = self.platform.config.controller_config()
        cli = self.platform.config.cli
        self.names = Names(self.base, cli.org, cli.space, cc.stacks)
        self.user: str = request.get(USER, "admin")
        self.clock = self.platform.clock

    def trace_app(self, app_guid: str) -> None:
        """From here on, this request is part of the app's API push trace."""
        trace = self.request.get(TRACE)
        recorder = self.platform.recorder
        if trace is None or trace.trace_id != trace.request_id:
            return
        trace.trace_id = f"api:{app_guid}"
        recorder.ensure_open(trace.trace_id)
        recorder.move(trace.request_id, trace.trace_id)
        current_trace.set(trace.trace_id)

    async def save_push_trace(self, app: Any) -> None:
        """The app runs: keep its API push trace for `cf trace APP` (when it
        holds a start), and end it."""
        recorder = self.platform.recorder
        trace_id = f"api:{app.guid}"
        deliveries = recorder.rows(trace_id)
        if not any(d[_LABEL] in STARTS for d in deliveries):
            return
        recorder.close(trace_id)
        token = current_trace.set(None)
        try:
            key = f"{trace_id}:{deliveries[0][_SEQ]}"
            await self.ask("cloud_controller", SaveTrace(app.guid, app.name, key, "push", tuple(deliveries)))
        finally:
            current_trace.reset(token)

    async def ask(self, component: str, message: Any, *, timeout: float | None = None) -> Any:
        """Ask a component. The deadline is real time (an HTTP client's
        patience), so a sped-up platform clock does not shorten it."""
        system = self.platform.system
        bound = system.default_ask_timeout if timeout is None else timeout
        return await system.ask(component, message, timeout=self.clock.for_real(bound))

    async def cc(self, message: Any, *, timeout: float | None = 30.0) -> Any:
        """Ask Cloud Controller; its named errors become the API's."""
        try:
            return await self.ask("cloud_controller", message, timeout=timeout)
        except Exception as exc:
            raise from_exception(exc) from exc

    async def upload(self, message: Any) -> Any:
        """Ask Cloud Controller to take an upload. A matched resource the
        pool does not hold, or holds with other content than the request
        says, is the client's mistake: CC's AppPackageInvalid, not a 500."""
        try:
            return await self.ask("cloud_controller", message, timeout=600.0)
        except (BlobNotFound, BlobCorrupt) as exc:
            detail = f"The app package is invalid: {exc.message}"
            raise ApiError(422, 150001, "CF-AppPackageInvalid", detail) from exc
        except Exception as exc:
            raise from_exception(exc) from exc

    def query(self) -> dict[str, str]:
        return dict(self.request.query)

    def query_list(self, key: str) -> list[str] | None:
        """A comma-separated filter (``names=a,b``), or None when absent. An
        empty value is one: cf v8 sends ``paths=`` (and ``hosts=``) to ask
        for the route with no path (or host)."""
        raw = self.request.query.get(key)
        if raw is None:
            return None
        return raw.split(",")


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The whole body, or None when it is longer than `limit` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; CC's MessageParseError when it is not one."""
    raw = await read_body(request)
    if raw is None:
        raise parse_error("the request body is larger than 1 MB")
    if not raw.strip():
        if required:
            raise parse_error("invalid request body")
        return {}
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nested past what a parser should follow.
        raise parse_error("invalid request body") from None
    if not isinstance(body, dict):
        raise parse_error("invalid request body")
    return body


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity (Python's parser would take them)."""
    raise ValueError(f"{name} is not JSON")


def dig(value: Any, *keys: str) -> Any:
    """`value[k1][k2]...`, or None where a step is missing or not an object
    (a body's ``relationships`` given as a string, say)."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def known_fields(body: dict[str, Any], allowed: frozenset[str] | set[str]) -> None:
    """CC's ``Unknown field(s): 'a', 'b'`` (422) for keys its message does not take."""
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise unprocessable("Unknown field(s): " + ", ".join(f"'{k}'" for k in unknown))
