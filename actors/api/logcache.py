"""log-cache's read API, as go-log-cache (cf v8's client) calls it: app log
lines from the `loggregator` actor as loggregator v2 envelopes in protojson
(no field the client's strict parser would refuse)."""

from __future__ import annotations

import base64

from aiohttp import web

from actors.api.context import Edge
from actors.api.errors import ApiError
from protocol.messages import LogLine, RecentLogs

__all__ = ["add_routes", "envelope"]

_MAX_LIMIT = 1000
_SOURCE_TYPES = {"APP": "APP/PROC/WEB"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/info", _info)
    app.router.add_get("/api/v1/read/{source_id}", _read)


async def _info(_request: web.Request) -> web.Response:
    return web.json_response({"version": "3.0.11", "vm_uptime": "0"})


def envelope(line: LogLine) -> dict[str, object]:
    return {
        "timestamp": str(int(line.timestamp * 1_000_000_000)),
        "source_id": line.app_guid,
        "instance_id": line.source_instance,
        "deprecated_tags": {},
        "tags": {"source_type": _SOURCE_TYPES.get(line.source_type, line.source_type)},
        "log": {
            "payload": base64.b64encode(line.text.encode("utf-8")).decode("ascii"),
            "type": "ERR" if line.stream == "ERR" else "OUT",
        },
    }


_ENVELOPE_TYPES = frozenset({"LOG", "COUNTER", "GAUGE", "TIMER", "EVENT", "ANY"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False", ""})


def _bad(detail: str) -> ApiError:
    return ApiError(400, 10005, "CF-BadQueryParameter", detail)


def _int(request: web.Request, key: str, default: int | None) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"{key} must be an integer (nanoseconds for times)") from None


async def _read(request: web.Request) -> web.Response:
    """`GET /api/v1/read/<app guid>`: lines in [start_time, end_time) (ns; a
    negative start, as cf sends for "the beginning", means from the first),
    ascending, or the newest first with ``descending=true``, at most `limit`."""
    edge = Edge(request)
    limit = _int(request, "limit", 100)
    assert limit is not None
    if not 0 <= limit <= _MAX_LIMIT:
        raise _bad(f"limit must be from 0 to {_MAX_LIMIT}")
    start = _int(request, "start_time", 0) or 0
    end = _int(request, "end_time", None)
    types = {t.upper() for t in request.query.getall("envelope_types", [])}
    unknown = sorted(types - _ENVELOPE_TYPES)
    if unknown:
        raise _bad(f"envelope_types must be among {', '.join(sorted(_ENVELOPE_TYPES))}, not {unknown[0]}")
    # As Go's strconv.ParseBool, which log-cache reads it with.
    raw = request.query.get("descending", "false")
    if raw not in _TRUE | _FALSE:
        raise _bad(f"descending must be true or false, not {raw!r}")
    descending = raw in _TRUE
    if types and not types & {"LOG", "ANY"}:
        return web.json_response({"envelopes": {"batch": []}})
    lines: list[LogLine] = await edge.ask("loggregator", RecentLogs(request.match_info["source_id"], _MAX_LIMIT))
    now_ns = int(edge.clock.now() * 1_000_000_000)
    stop = end if end is not None else now_ns + 1
    chosen = [x for x in lines if start <= int(x.timestamp * 1_000_000_000) < stop]
    chosen = list(reversed(chosen))[:limit] if descending else chosen[:limit]
    return web.json_response({"envelopes": {"batch": [envelope(x) for x in chosen]}})
