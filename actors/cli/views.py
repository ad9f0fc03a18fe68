"""The commands that show things: apps, app, logs, events, cells, trace, help."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio

from actors.cli import render
from actors.cli.base import Command, Run, runs
from actors.cli.commands import help_text
from actors.cli.lifecycle import Lifecycle
from actors.loggregator import format_log_line
from protocol.errors import PlatformError
from protocol.messages import CellInfo, GetEvents, GetTrace, ListApps, ListCells, LogLine, RecentLogs
from protocol.snapshots import CellStatistics

__all__ = ["Views"]


class NoTrace(PlatformError):
    """`cf trace` of an app with no recorded push, restart or restage."""

    code = "NoTrace"

    def __init__(self) -> None:
        super().__init__("no push, restart or restage of this app has been recorded yet")


class Views(Lifecycle):
    @runs("apps")
    async def cmd_apps(self, _command: Command, run: Run) -> int:
        out = run.out
        out(self._header("Getting apps"))
        out("")
        apps = await self.cc(ListApps(), timeout=60)
        if not apps:
            out("No apps found")
            return 0
        for line in render.apps_table(apps):
            out(line)
        return 0

    @runs("app")
    async def cmd_app(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        if command.args.guid:
            out(app.guid)
            return 0
        out(self._header("Showing health and status for", app.name))
        out("")
        return await self._show_app(app.guid, run)

    @runs("logs")
    async def cmd_logs(self, command: Command, run: Run) -> int:
        out = run.out
        c = self.config
        app = await self._app(command.args.app)
        out(f"Retrieving logs for app {app.name} in org {c.org} / space {c.space} as {c.user}...")
        out("")
        if command.args.recent:
            for line in await self.ask("loggregator", RecentLogs(app.guid)):
                out(format_log_line(line))
            return 0

        def tail(line: LogLine) -> None:
            out(format_log_line(line))

        subscription = self.subscribe(app.guid, tail)
        try:
            await asyncio.Event().wait()  # until the caller cancels the tail (Ctrl-C)
        finally:
            self.unsubscribe(app.guid, subscription)
        return 0

    @runs("events")
    async def cmd_events(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Getting events for", app.name))
        out("")
        for line in render.events_table(await self.cc(GetEvents(app.guid))):
            out(line)
        return 0

    @runs("cells")
    async def cmd_cells(self, _command: Command, run: Run) -> int:
        out = run.out
        out("Getting cells...")
        out("")
        presences = await self.ask("bbs", ListCells())
        infos = []
        for presence in sorted(presences, key=lambda p: (p.cell_index, p.cell_id)):
            try:
                infos.append(await self.ask(presence.cell_id, CellInfo(), timeout=2))
            except Exception:  # noqa: BLE001 - a cell that does not answer is shown as such
                infos.append(
                    CellStatistics(
                        cell_id=presence.cell_id,
                        zone=presence.zone,
                        state="unresponsive",
                        memory_used=0,
                        memory_total=presence.memory_mb,
                        disk_used=0,
                        disk_total=presence.disk_mb,
                        containers_used=0,
                        containers_total=presence.containers,
                    )
                )
        for line in render.cells_table(infos):
            out(line)
        return 0

    @runs("trace")
    async def cmd_trace(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        trace = await self.cc(GetTrace(app.guid))
        if trace is None:
            raise NoTrace()
        diagram = render.mermaid(trace.deliveries, title=f"cf {trace.kind} {app.name}")
        for target, kind in ((command.args.svg, "svg"), (command.args.html, "html")):
            if target:
                from actors.cli.pictures import write_picture

                path = Path(run.message.cwd) / target
                async with self.clock.threaded_io():
                    await anyio.to_thread.run_sync(write_picture, trace.deliveries, diagram, path, kind)
                out(f"Wrote {kind.upper()} to {path}")
        if not (command.args.svg or command.args.html):
            for line in diagram.rstrip("\n").split("\n"):
                out(line)
        return 0

    @runs("help")
    async def cmd_help(self, command: Command, run: Run) -> int:
        for line in help_text(command.args.topic):
            run.out(line)
        return 0
