"""`ApiServer`: the platform's HTTP edge, on its own event loop.

An aiohttp `AppRunner` with one `TCPSite` on 127.0.0.1 (never another
interface): no signal handlers of its own, so the process that runs the
platform keeps its own. Requests become the protocol messages the cli sends
to `cloud_controller`; the edge keeps no state of its own.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from protocol.errors import ApiPortInUse

__all__ = ["HOST", "ApiServer"]

log = structlog.get_logger("minifoundry.api")

HOST = "127.0.0.1"


class ApiServer:
    """Serves the API for `platform` on 127.0.0.1:`port` (0: a free port)."""

    def __init__(self, platform: Any, port: int) -> None:
        self.platform = platform
        self.requested_port = port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "the API server is not started"
        return f"http://{HOST}:{self.port}"

    def application(self) -> web.Application:
        from actors.api.routes import build_application

        return build_application(self.platform, lambda: self.url)

    async def start(self) -> ApiServer:
        runner = web.AppRunner(self.application(), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.requested_port, reuse_address=False)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ApiPortInUse(
                f"cannot listen on {HOST}:{self.requested_port} ({exc.strerror or exc}); choose another --api-port"
            ) from None
        self.port = int(runner.addresses[0][1])  # the one socket: 127.0.0.1, and the port it got
        self._runner = runner
        log.info("api-listening", url=self.url)
        return self

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("api-closed")
