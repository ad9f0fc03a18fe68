"""The API's application: its routes, and the middlewares every request
passes (authentication against the `uaa` actor, and errors in Cloud
Controller's shapes)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from actors.api import logcache, login, v2, v3, v3_org
from actors.api.context import BASE_URL, PLATFORM, STEPS, TRACE, USER, RequestTrace
from actors.api.errors import INVALID_TOKEN, NOT_AUTHENTICATED, UNKNOWN_REQUEST, ApiError, from_exception
from actors.runtime.delivery import current_trace, external_sender
from protocol.errors import InvalidToken
from protocol.messages import TokenClaims, VerifyToken

__all__ = ["PUBLIC_PATHS", "V2_VERSION", "V3_VERSION", "build_application"]

log = structlog.get_logger("minifoundry.api")

V3_VERSION = "3.180.0"  # >= 3.99.0 (cf v8's minimum), < 3.211.0 (no embedded process instances)
V2_VERSION = "2.180.0"
#: What answers without a token (as in Cloud Foundry: the root, the info
#: documents, and UAA's own login endpoints).
PUBLIC_PATHS = frozenset({"/", "/v2/info", "/v3", "/v3/info", "/login", "/oauth/token", "/api/v1/info"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_application(platform: Any, base_url: Callable[[], str]) -> web.Application:
    app = web.Application(middlewares=[_errors, _authenticate, _trace], client_max_size=1024 * 1024)
    app[PLATFORM] = platform
    app[BASE_URL] = base_url
    app.router.add_get("/", _root)
    login.add_routes(app)
    v3.add_routes(app)
    v3_org.add_routes(app)
    v2.add_routes(app)
    logcache.add_routes(app)
    return app


def _render(request: web.Request, error: ApiError) -> web.Response:
    if request.path.startswith("/v2"):
        return web.json_response(error.v2(), status=error.v2_status)
    return web.json_response(error.v3(), status=error.status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _render(request, exc)
    except web.HTTPNotFound:
        response = _render(request, UNKNOWN_REQUEST)
    except web.HTTPMethodNotAllowed:
        response = _render(request, UNKNOWN_REQUEST)
    except web.HTTPRequestEntityTooLarge:
        response = _render(request, ApiError(413, 10004, "CF-InvalidRequest", "The request body is too large"))
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is answered in Cloud Controller's shape
        error = from_exception(exc)
        if error.status >= 500:
            log.warning("api-request-failed", method=request.method, path=request.path, error=repr(exc))
        response = _render(request, error)
    log.debug("api-request", method=request.method, path=request.path, status=response.status)
    return response


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every call but the public ones needs a valid, unexpired token from
    UAA: none is CF-NotAuthenticated, a bad one CF-InvalidAuthToken."""
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        # An unknown path is "Unknown request" (404) to anyone, as CC answers it.
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # Only a bearer token counts as one (Basic credentials are no token).
        raise NOT_AUTHENTICATED
    platform = request.app[PLATFORM]
    try:
        claims: TokenClaims = await platform.system.ask(
            "uaa", VerifyToken(token.strip()), timeout=platform.clock.for_real(10.0)
        )
    except InvalidToken:
        raise INVALID_TOKEN from None
    request[USER] = claims.user_name
    return await handler(request)


_APP_PATH = re.compile(r"/v[23]/(?:apps|processes)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@web.middleware
async def _trace(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each call joins a conversation the trace recorder keeps, as the `cli`
    participant (cf is the cli of a push through the API), labelled with
    its method and route: the app's push trace when the path names the app
    and the call changes it (or that trace is open), else its own."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    platform = request.app[PLATFORM]
    recorder = platform.recorder
    resource = request.match_info.route.resource
    label = f"{request.method} {resource.canonical if resource is not None else request.path}"
    request_id = f"http:{platform.new_command_id()}"
    trace_id = request_id
    match = _APP_PATH.match(request.path)
    if match is not None:
        app_trace = f"api:{match.group(1)}"
        if request.method != "GET" or recorder.is_open(app_trace):
            trace_id = app_trace
    if trace_id == request_id:
        recorder.open(request_id)
    else:
        recorder.ensure_open(trace_id)
    recorder.note(trace_id, "cli", "cloud_controller", label, STEPS.get(label))
    request[TRACE] = RequestTrace(request_id, trace_id)
    tokens = current_trace.set(trace_id), external_sender.set("cli")
    try:
        return await handler(request)
    finally:
        current_trace.reset(tokens[0])
        external_sender.reset(tokens[1])
        if request[TRACE].trace_id == request_id:
            recorder.close(request_id)


async def _root(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]()
    return web.json_response(
        {
            "links": {
                "self": {"href": base},
                "cloud_controller_v2": {"href": f"{base}/v2", "meta": {"version": V2_VERSION}},
                "cloud_controller_v3": {"href": f"{base}/v3", "meta": {"version": V3_VERSION}},
                "network_policy_v0": None,
                "network_policy_v1": None,
                "login": {"href": base},
                "uaa": {"href": base},
                "credhub": None,
                "routing": None,
                "logging": {"href": base.replace("http://", "ws://", 1)},
                "log_cache": {"href": base},
                "log_stream": None,
                "app_ssh": None,
            }
        }
    )
