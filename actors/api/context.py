"""What every handler of the API shares: the platform behind it, the
request's base URL and user, and asking Cloud Controller (or another
component) the way the cli does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from actors.api.errors import from_exception, parse_error
from actors.api.present import Names

__all__ = ["BASE_URL", "MAX_BODY_BYTES", "PLATFORM", "USER", "Edge", "json_body", "read_body"]

MAX_BODY_BYTES = 1024 * 1024  # JSON and YAML bodies; uploads stream apart
#: The application's platform, and the function giving its base URL.
PLATFORM: web.AppKey[Any] = web.AppKey("platform", object)
BASE_URL: web.AppKey[Callable[[], str]] = web.AppKey("base_url")
#: The user a request's token names.
USER: web.RequestKey[str] = web.RequestKey("user", str)


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

    async def ask(self, component: str, message: Any, *, timeout: float | None = None) -> Any:
        return await self.platform.system.ask(component, message, timeout=timeout)

    async def cc(self, message: Any, *, timeout: float | None = 30.0) -> Any:
        """Ask Cloud Controller; its named errors become the API's."""
        try:
            return await self.ask("cloud_controller", message, timeout=timeout)
        except Exception as exc:
            raise from_exception(exc) from exc

    def query(self) -> dict[str, str]:
        return dict(self.request.query)

    def query_list(self, key: str) -> list[str] | None:
        """A comma-separated filter (``names=a,b``), or None when absent."""
        raw = self.request.query.get(key)
        if raw is None:
            return None
        return [v for v in raw.split(",") if v != ""]


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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise parse_error("invalid request body") from None
    if not isinstance(body, dict):
        raise parse_error("invalid request body")
    return body
