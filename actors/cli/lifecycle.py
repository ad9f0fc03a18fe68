"""The commands that change a running app, as cf v8 words them: scale,
start, stop, restart, restage and delete."""

from __future__ import annotations

from actors.cli.base import Command, CommandFailed, Run, runs
from actors.cli.push import Push
from actors.cli.push_spec import apply_flags, default_spec
from protocol import ccdb
from protocol.errors import AppNotFound, IncorrectUsage
from protocol.manifest import validate_app_name
from protocol.messages import DeleteApp, DeleteRoute, GetApp, ListRoutes, ScaleApp, StartApp, StopApp
from protocol.records import AppRecord
from protocol.states import AppState

__all__ = ["Lifecycle"]


class Lifecycle(Push):
    async def _needs_staging(self, app: AppRecord) -> bool:
        """Whether the app's newest package has no droplet yet (start and
        restart then stage it first, as cf v8 does)."""
        package = await self.ask("ccdb", ccdb.LatestReadyPackage(app.guid))
        if package is None:
            return False
        if app.droplet_guid is None:
            return True
        droplet = await self.ask("ccdb", ccdb.CurrentDroplet(app.guid))
        return droplet is None or droplet.package_guid != package.guid

    async def _confirm(self, run: Run, question: str) -> bool | None:
        """A y/N answer; None at the end of input (cf fails with `EOF`)."""
        answer = await run.confirm(question)
        if answer is None:
            if not run.message.interactive:
                run.out(f"{question} [yN]: FAILED")
            else:
                run.out("FAILED")
            run.err("EOF")
        return answer

    @runs("scale")
    async def cmd_scale(self, command: Command, run: Run) -> int:
        out = run.out
        args = command.args
        app = await self._app(args.app)
        if args.process != "web":
            raise CommandFailed("ProcessNotFound", f"Process {args.process} not found")
        if args.instances is None and args.memory is None and args.disk is None:
            out(self._header("Showing current scale of", app.name))
            out("")
            return await self._show_app(app.guid, run)
        try:
            spec = apply_flags(default_spec(app.name), instances=args.instances, memory=args.memory, disk=args.disk)
        except ValueError as exc:
            raise IncorrectUsage(f"Incorrect Usage: {exc}") from None
        out(self._header("Scaling", app.name))
        out("")
        restart = args.memory is not None or args.disk is not None
        if restart and not args.force:
            question = f"This will cause the app to restart. Are you sure you want to scale {app.name}?"
            answer = await self._confirm(run, question)
            if answer is None:
                return 1
            if not answer:
                out("Scaling cancelled")
                return 0
            out("")
        scaled = await self.cc(
            ScaleApp(
                app.guid,
                instances=spec.instances if args.instances is not None else None,
                memory_mb=spec.memory_mb if args.memory is not None else None,
                disk_mb=spec.disk_mb if args.disk is not None else None,
                actor=self.config.user,
            )
        )
        if restart:
            out(self._header("Stopping", app.name))
            await self.cc(StopApp(app.guid, self.config.user))
            out("")
            out(self._header("Starting", app.name))
            out("")
            await self.cc(StartApp(app.guid, self.config.user))
            scaled = await self.cc(GetApp(app.name))
        if scaled.state is AppState.STARTED:
            code = await self._wait_until_running(scaled, run)
            if code:
                return code
        out(self._header("Showing current scale of", app.name))
        out("")
        return await self._show_app(app.guid, run)

    async def _wait_until_running(self, app: AppRecord, run: Run) -> int:
        """Scale's wait: the poll lines (stdout), then an empty line."""
        try:
            await self._wait_started(app, run, kind="scale", show=False)
        except CommandFailed as exc:
            if exc.error == "StartUnsuccessful":
                run.out(self._header("Showing current scale of", app.name))
                run.out("")
                await self._show_app(app.guid, run)
            raise
        return 0

    @runs("start")
    async def cmd_start(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Starting", app.name))
        out("")
        if app.state is AppState.STARTED:
            out(f"App '{app.name}' is already started.")
            out("OK")
            out("")
            return 0
        if await self._needs_staging(app):
            await self._stage(app, run, reason="push", kind="start")
            out("")
            out(self._header("Starting", app.name))
            out("")
        elif app.droplet_guid is None:
            raise CommandFailed("NotStaged", "App cannot start without a package to stage or a droplet to run.")
        out("Waiting for app to start...")
        out("")
        await self.cc(StartApp(app.guid, self.config.user))
        return await self._wait_started(app, run, kind="start")

    @runs("stop")
    async def cmd_stop(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Stopping", app.name))
        if app.state is AppState.STOPPED:
            out(f"App {app.name} is already stopped.")
        else:
            await self.cc(StopApp(app.guid, self.config.user))
        out("OK")
        out("")
        return 0

    @runs("restart")
    async def cmd_restart(self, command: Command, run: Run) -> int:
        out = run.out
        app = await self._app(command.args.app)
        out(self._header("Restarting", app.name))
        out("")
        try:
            if await self._needs_staging(app):
                await self._stage(app, run, reason="push", kind="start")
                out("")
                out(self._header("Restarting", app.name))
                out("")
            elif app.droplet_guid is None:
                raise CommandFailed("NotStaged", "App cannot start without a package to stage or a droplet to run.")
            if app.state is AppState.STARTED:
                out("Stopping app...")
                out("")
            out("Waiting for app to start...")
            out("")
            await self.cc(StartApp(app.guid, self.config.user, restart=True))
            return await self._wait_started(app, run, kind="restart")
        finally:
            await self._save_trace(app, "restart")

    @runs("restage")
    async def cmd_restage(self, command: Command, run: Run) -> int:
        out = run.out
        run.err("This action will cause app downtime.")
        out("")
        out(self._header("Restaging", command.args.app))
        out("")
        app = await self._app(command.args.app)
        package = await self.ask("ccdb", ccdb.LatestReadyPackage(app.guid))
        if package is None:
            raise CommandFailed(
                "NoEligiblePackages",
                f"App '{app.name}' has no eligible packages.",
                "",
                f"TIP: Use 'cf packages {app.name}' to list packages in your app. "
                "Use 'cf create-package' to create one.",
            )
        try:
            await self._stage(app, run, reason="restage", kind="restage")
            out("")
            out(self._header("Restarting", app.name))
            out("")
            if app.state is AppState.STARTED:
                out("Stopping app...")
                out("")
            out("Waiting for app to start...")
            out("")
            await self.cc(StartApp(app.guid, self.config.user, restart=True))
            return await self._wait_started(app, run, kind="restage")
        finally:
            await self._save_trace(app, "restage")

    @runs("delete")
    async def cmd_delete(self, command: Command, run: Run) -> int:
        out = run.out
        args = command.args
        validate_app_name(args.app)
        if not args.force:
            if args.delete_routes:
                out("Deleting the app and associated routes will make apps with this route, in any org, unreachable.")
                question = f"Really delete the app {args.app} and associated routes?"
            else:
                question = f"Really delete the app {args.app}?"
            answer = await self._confirm(run, question)
            if answer is None:
                return 1
            if not answer:
                out(f"App '{args.app}' has not been deleted.")
                return 0
        out(self._header("Deleting", args.app))
        try:
            app = await self.cc(GetApp(args.app))
        except AppNotFound:
            run.err(f"App '{args.app}' does not exist.")
            out("OK")
            out("")
            return 0
        if args.delete_routes:
            # As cf v8: nothing is deleted if another app has one of its routes.
            shared = {url.lower() for url, guids in await self.cc(ListRoutes()) if set(guids) - {app.guid}}
            for url in app.routes:
                if url.lower() in shared:
                    raise CommandFailed(
                        "RouteBoundToMultipleApps",
                        f"App '{app.name}' was not deleted because route '{url}' is mapped to more than one app.",
                    )
        await self.cc(DeleteApp(app.guid, self.config.user), timeout=120)
        if args.delete_routes:
            # The app first, then each route it had.
            for url in app.routes:
                await self.cc(DeleteRoute(url, self.config.user), timeout=120)
        out("OK")
        out("")
        return 0
