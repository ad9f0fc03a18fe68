"""The commands that show things: apps, app, logs, events, cells, trace, help."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.cli import render
from actors.cli.base import Command, CommandFailed, Run, runs
from actors.cli.commands import help_text
from actors.cli.lifecycle import Lifecycle
from actors.loggregator import format_log_line
from actors.runtime.offload import in_thread
from protocol.errors import PlatformError, UnknownCommand
from protocol.messages import CellInfo, GetEvents, GetTrace, ListAppSummaries, ListCells, LogLine, RecentLogs
from protocol.snapshots import CellStatistics

__all__ = ["Views"]


class NoTrace(PlatformError):
    """`cf trace` of an app with no recorded push, restart or restage."""

    code = "NoTrace"

    def __init__(self) -> None:
        super().__init__("no push, restart or restage of this app has been recorded yet")


class Views(Lifecycle):
    @runs("apps")
    async def cmd_apps(self, command: Command, run: Run) -> int:
        out = run.out
        out(self._header("Getting apps"))
        out("")
        apps = await self.cc(ListAppSummaries(), timeout=60)
        if not apps:
            out("No apps found")
            return 0
        lines = render.apps_table(apps)
        if command.args.no_stats:
            lines = render.table(
                [["name", "requested state", "routes"]]
                + [[a.name, a.state.value.lower(), ", ".join(a.routes)] for a, _d, _i in apps]
            )
        for line in lines:
            out(line)
        return 0

    @runs("app")
    async def cmd_app(self, command: Command, run: Run) -> int:
        out = run.out
        if command.args.guid:
            app = await self._app(command.args.app)
            out(app.guid)
            return 0
        out(self._header("Showing health and status for", command.args.app))
        out("")
        app = await self._app(command.args.app)
        return await self._show_app(app.guid, run)

    @runs("logs")
    async def cmd_logs(self, command: Command, run: Run) -> int:
        out = run.out
        out(self._header("Retrieving logs for", command.args.app))
        out("")
        app = await self._app(command.args.app)
        if command.args.recent:
            for line in await self.ask("loggregator", RecentLogs(app.guid)):
                for piece in format_log_line(line).split("\n"):
                    out(piece)
            return 0

        def tail(line: LogLine) -> None:
            for piece in format_log_line(line).split("\n"):
                out(piece)

        subscription = self.subscribe(app.guid, tail)
        try:
            await asyncio.Event().wait()  # until the caller cancels the tail (Ctrl-C)
        finally:
            self.unsubscribe(app.guid, subscription)
        return 0

    @runs("events")
    async def cmd_events(self, command: Command, run: Run) -> int:
        out = run.out
        out(self._header("Getting events for", command.args.app))
        app = await self._app(command.args.app)
        events = await self.cc(GetEvents(app.guid))
        if not events:
            out("No events found.")
        for line in render.events_table(events):
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
                try:
                    async with self.clock.threaded_io():
                        await in_thread(write_picture, trace.deliveries, diagram, path, kind)
                except OSError as exc:  # a folder we may not write in, a full disk
                    raise CommandFailed("PictureNotWritten", f"Could not write {path}: {exc.strerror or exc}") from None
                out(f"Wrote {kind.upper()} to {path}")
        if not (command.args.svg or command.args.html):
            for line in diagram.rstrip("\n").split("\n"):
                out(line)
        return 0

    @runs("help")
    async def cmd_help(self, command: Command, run: Run) -> int:
        try:
            lines = help_text(command.args.topic, everything=bool(getattr(command.args, "all", False)))
        except UnknownCommand as exc:
            # `cf help foo`: through the help command, so FAILED follows.
            raise CommandFailed(exc.code, exc.message) from None
        for line in lines:
            run.out(line)
        return 0
