"""The API's application: routes, and the middlewares every request passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = ["build_application"]

V3_VERSION = "3.180.0"  # >= 3.99.0 (cf v8's minimum), < 3.211.0 (no embedded process instances)
V2_VERSION = "2.180.0"


def build_application(platform: Any, base_url: Callable[[], str]) -> web.Application:
    app = web.Application()
    app["platform"] = platform
    app["base_url"] = base_url
    app.router.add_get("/", _root)
    return app


async def _root(request: web.Request) -> web.Response:
    base = request.app["base_url"]()
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
