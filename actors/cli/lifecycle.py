"""The commands that change a running app: scale, start, stop, restart,
restage and delete."""

from __future__ import annotations

from actors.cli.base import Command, Run, runs
from actors.cli.push import Push
from actors.cli.push_spec import apply_flags, default_spec, number
from protocol.errors import AppNotFound, IncorrectUsage, NotStaged
from protocol.manifest import validate_app_name
from protocol.messages import DeleteApp, GetApp, ScaleApp, StopApp
from protocol.states import AppState

__all__ = ["Lifecycle"]


class Lifecycle(Push):
    @runs("scale")
    async def cmd_scale(self, command: Command, run: Run) -> int:
        out = run.out
        args = command.args
        # Flags are checked before the app is looked up, as cf's parser does.
        try:
            spec = apply_flags(
                default_spec(args.app), instances=number(args.instances, "-i"), memory=args.memory, disk=args.disk
            )
        except ValueError as exc:
            raise IncorrectUsage(f"Incorrect Usage: {exc}") from None
        app = await self._app(args.app)
        if args.instances is None and args.memory is None and args.disk is None:
            out(self._header("Showing current scale of", app.name))
            out("")
            return await self._show_app(app.guid, run)
        out(self._header("Scaling", app.name))
        changed = await self.cc(
            ScaleApp(
                app.guid,
                instances=spec.instances if args.instances is not None else None,
                memory_mb=spec.memory_mb if args.memory is not None else None,
                disk_mb=spec.disk_mb if args.disk is not None else None,
                actor=self.config.user,
            )
        )
        out("")
        if changed.state is AppState.STARTED and (args.memory is not None or args.disk is not None):
            out(f"Waiting for app {app.name} to start...")
            out("")
            return await self._wait_started(changed, run)
        return await self._show_app(app.guid, run)

    @runs("start")
    async def cmd_start(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Starting", app.name))
        if app.state is AppState.STARTED:
            out("")
            out(f"App '{app.name}' is already started.")
            out("OK")
            return 0
        out("")
        if app.droplet_guid is None:
            await self._stage(app, run, reason="push")
        return await self._start_and_wait(app, run, restart=False)

    @runs("stop")
    async def cmd_stop(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Stopping", app.name))
        if app.state is AppState.STOPPED:
            out("")
            out(f"App '{app.name}' is already stopped.")
            out("OK")
            return 0
        await self.cc(StopApp(app.guid, self.config.user))
        out("")
        out("OK")
        return 0

    @runs("restart")
    async def cmd_restart(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Restarting", app.name))
        out("")
        if app.droplet_guid is None:
            raise NotStaged(f"App {app.name} has not been staged: push or restage it first")
        out("Stopping app...")
        out("")
        try:
            return await self._start_and_wait(app, run, restart=True)
        finally:
            await self._save_trace(app, "restart")

    @runs("restage")
    async def cmd_restage(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Restaging", app.name))
        out("")
        out("This action will cause app downtime.")
        out("")
        try:
            await self._stage(app, run, reason="restage")
            if app.state is not AppState.STARTED:
                return await self._show_app(app.guid, run)
            return await self._start_and_wait(app, run, restart=True)
        finally:
            await self._save_trace(app, "restage")

    @runs("delete")
    async def cmd_delete(self, command: Command, run: Run) -> int:
        out = run.out
        args = command.args
        validate_app_name(args.app)
        if not args.force:
            answer = await run.confirm(f"Really delete the app {args.app}?")
            if answer is None:
                raise IncorrectUsage(
                    f"Incorrect Usage: deleting asks for confirmation; use 'delete {args.app} -f' when not at a terminal"
                )
            if not answer:
                out("Delete cancelled")
                return 0
        out(self._header("Deleting", args.app))
        try:
            app = await self.cc(GetApp(args.app))
        except AppNotFound:
            out("")
            out(f"App '{args.app}' does not exist.")
            out("OK")
            return 0
        await self.cc(DeleteApp(app.guid, self.config.user), timeout=120)
        out("")
        out("OK")
        return 0
