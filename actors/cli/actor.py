"""The `cli` actor: the user's side of every command, as the cf CLI does it.

It parses a command, talks to Cloud Controller step by step (create the app,
match resources, upload only the unknown files, stage while tracing the
staging logs, start, poll the instances) and prints what cf prints. Each
command runs beside the mailbox (a deferred reply), so several users' pushes
proceed at once and a long push never blocks `apps`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog

from actors.appfiles import build_package, scan_app
from actors.cli import render
from actors.cli.commands import Command, help_text, parse
from actors.loggregator import format_log_line
from actors.runtime import AsyncioActor, Deferred
from actors.runtime.delivery import current_trace
from protocol.errors import (
    ActorDeadError,
    AppNotFound,
    MinifoundryError,
    IncorrectUsage,
    InvalidManifest,
    NotStaged,
    PathNotFound,
    PlatformError,
    StartUnsuccessful,
)
from protocol.manifest import AppSpec, apply_flags, default_spec, load_manifest, validate_app_name
from protocol.messages import (
    CancelCommand,
    CellInfo,
    CliCommand,
    CreateOrUpdateApp,
    DeleteApp,
    GetApp,
    GetAppInstances,
    GetAppSummary,
    GetEvents,
    GetTrace,
    ListApps,
    ListCells,
    MatchResources,
    RecentLogs,
    SaveTrace,
    ScaleApp,
    StageApp,
    StartApp,
    StopApp,
    Subscribe,
    Unsubscribe,
    UploadBits,
)
from protocol.states import AppState, BuildState
from protocol.units import format_bytes, format_mb

__all__ = ["CliActor", "CliConfig"]

log = structlog.get_logger("minifoundry.cli")

Out = Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class CliConfig:
    org: str = "minifoundry"
    space: str = "dev"
    user: str = "admin"
    poll_interval: float = 1.0  # platform seconds between instance polls
    start_timeout: float = 300.0  # cf's CF_STARTUP_TIMEOUT (5 minutes)
    staging_wait: float = 960.0  # longer than Cloud Controller's staging timeout
    api_timeout: float = 30.0


class CliActor(AsyncioActor):
    default_name = "cli"

    def __init__(self, config: CliConfig | None = None, *, recorder: Any = None, name: str = "cli") -> None:
        super().__init__(name=name)
        self.config = config or CliConfig()
        self.recorder = recorder
        self._subscriptions = 0
        self._running: list[tuple[Out, asyncio.Task[Any] | None]] = []  # for CancelCommand

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CliCommand):
            return Deferred(self._run_command(message))
        if isinstance(message, CancelCommand):
            return self._cancel_command(message)
        return super().on_receive(message)

    # --- running one command --------------------------------------------------------------

    async def _run_command(self, message: CliCommand) -> int:
        out = message.out
        trace_id = current_trace.get()
        running = (out, asyncio.current_task())
        self._running.append(running)
        try:
            command = parse(message.argv)
            handler = getattr(self, f"_cmd_{command.name}")
            code = await handler(command, message)
            return int(code or 0)
        except PlatformError as exc:
            out(str(exc))
            out("FAILED")
            return 1
        except (MinifoundryError, ActorDeadError) as exc:
            # The platform itself failed us (a deadline passed, a component
            # is down): named, so a user or an experiment can tell which.
            out(f"{type(exc).__name__} - {exc}")
            out("FAILED")
            return 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user sees a message, the log the trace
            log.exception("cli-command-crashed", argv=list(message.argv))
            out(f"Unexpected error: {type(exc).__name__}: {exc}")
            out("FAILED")
            return 1
        finally:
            self._running.remove(running)
            if self.recorder is not None and trace_id is not None and not isinstance(trace_id, tuple):
                self.recorder.close(trace_id)

    def _cancel_command(self, message: CancelCommand) -> int:
        """Cancel the commands writing to `message.out`; how many were running."""
        tasks = [task for out, task in self._running if out is message.out and task is not None]
        for task in tasks:
            task.cancel()
        return len(tasks)

    def _header(self, verb: str, app: str | None = None) -> str:
        c = self.config
        what = f" app {app}" if app else ""
        return f"{verb}{what} in org {c.org} / space {c.space} as {c.user}..."

    async def cc(self, message: Any, timeout: float | None = None) -> Any:
        return await self.ask("cloud_controller", message, timeout=timeout or self.config.api_timeout)

    async def _app(self, name: str) -> Any:
        validate_app_name(name)
        return await self.cc(GetApp(name))

    # --- push ---------------------------------------------------------------------------------

    async def _cmd_push(self, command: Command, message: CliCommand) -> int:
        args = command.args
        cwd = Path(message.cwd)
        specs = self._push_specs(args, cwd, warn=lambda text: message.out(f"Warning: {text}"))
        code = 0
        for spec, explicit, manifest in specs:
            code = max(code, await self._push_one(spec, explicit, manifest, args.no_start, message))
        return code

    def _push_specs(
        self, args: Any, cwd: Path, warn: Out | None = None
    ) -> list[tuple[AppSpec, frozenset[str], Path | None]]:
        manifest_path: Path | None = None
        if args.manifest and args.no_manifest:
            raise IncorrectUsage("Incorrect Usage: '-f' and '--no-manifest' cannot be used together")
        if args.manifest:
            manifest_path = (cwd / args.manifest).resolve()
            if manifest_path.is_dir():
                manifest_path = manifest_path / "manifest.yml"
            if not manifest_path.exists():
                raise PathNotFound(f"Manifest file {manifest_path} does not exist")
        elif not args.no_manifest:
            for candidate in (cwd / "manifest.yml", (cwd / args.path / "manifest.yml") if args.path else None):
                if candidate is not None and candidate.is_file():
                    manifest_path = candidate.resolve()
                    break
        flags = self._flags(args, cwd)
        if manifest_path is not None:
            manifest = load_manifest(manifest_path)
            for text in manifest.warnings:  # unknown keys, deprecations: the push goes on
                if warn is not None:
                    warn(text)
            apps = list(manifest.apps)
            if args.app:
                validate_app_name(args.app)
                named = [a for a in apps if a.name == args.app]
                if named:
                    apps = named
                elif len(apps) == 1:
                    apps = [dataclasses.replace(apps[0], name=args.app, routes=())]
                else:
                    raise InvalidManifest(f"Could not find app named '{args.app}' in manifest")
            elif len(apps) > 1 and any(v is not None for k, v in flags.items() if k != "path"):
                raise IncorrectUsage("Incorrect Usage: command line flags apply to one app; name it")
            result = []
            for spec in apps:
                if not spec.routes and not spec.no_route and not spec.random_route:
                    spec = dataclasses.replace(spec, routes=(f"{spec.name}.apps.internal",))
                explicit = _explicit(spec) | _map_flag_fields({k for k, v in flags.items() if v not in (None, False)})
                spec = self._apply(spec, flags)
                if spec.path is None:
                    spec = dataclasses.replace(spec, path=str(manifest_path.parent))
                result.append((spec, frozenset(explicit), manifest_path))
            return result
        if not args.app:
            raise IncorrectUsage("Incorrect Usage: the required argument `APP_NAME` was not provided")
        spec = default_spec(args.app)
        explicit = {k for k, v in flags.items() if v not in (None, False)}
        spec = self._apply(spec, flags)
        if spec.path is None:
            spec = dataclasses.replace(spec, path=str(cwd))
        return [(spec, frozenset(_map_flag_fields(explicit)), None)]

    def _flags(self, args: Any, cwd: Path) -> dict[str, Any]:
        return {
            "instances": number(args.instances, "-i"),
            "memory": args.memory,
            "disk": args.disk,
            "buildpacks": args.buildpacks,
            "command": args.command,
            "path": str((cwd / args.path).resolve()) if args.path else None,
            "stack": args.stack,
            "health_check_type": args.health_check_type,
            "health_check_http_endpoint": args.endpoint,
            "timeout": number(args.timeout, "-t"),
            "no_route": args.no_route or None,
            "random_route": args.random_route or None,
        }

    def _apply(self, spec: AppSpec, flags: dict[str, Any]) -> AppSpec:
        try:
            return apply_flags(spec, **flags)
        except ValueError as exc:
            raise IncorrectUsage(f"Incorrect Usage: {exc}") from None

    async def _push_one(
        self, spec: AppSpec, explicit: frozenset[str], manifest: Path | None, no_start: bool, message: CliCommand
    ) -> int:
        out = message.out
        c = self.config
        # One command may push several apps (a manifest's list): each app's
        # trace is the command's first arrow plus what its own push delivered.
        trace_start = self._trace_length()
        out(f"Pushing app {spec.name} to org {c.org} / space {c.space} as {c.user}...")
        if manifest is not None:
            out(f"Applying manifest file {manifest}...")
        out("Getting app info...")
        path = Path(spec.path or ".")
        # Gather the bits before touching the platform: a bad path changes nothing.
        async with self.clock.threaded_io():
            bits = await anyio.to_thread.run_sync(scan_app, path)
        existed = True
        try:
            await self.cc(GetApp(spec.name))
        except AppNotFound:
            existed = False
        out(f"{'Updating' if existed else 'Creating'} app with these attributes...")
        out(f"  name:        {spec.name}")
        out(f"  path:        {bits.source}")
        out(f"  instances:   {spec.instances}")
        out(f"  memory:      {format_mb(spec.memory_mb)}")
        if spec.buildpacks:
            out(f"  buildpacks:  {', '.join(spec.buildpacks)}")
        if spec.command:
            out(f"  command:     {spec.command}")
        app = await self.cc(CreateOrUpdateApp(spec, explicit, c.user))
        try:
            return await self._push_bits(app, bits, existed, no_start, out)
        finally:
            await self._save_trace(app, "push", since=trace_start)

    async def _push_bits(self, app: Any, bits: Any, existed: bool, no_start: bool, out: Out) -> int:
        c = self.config
        out(f"  routes:      {', '.join(app.routes) if app.routes else '(none)'}")
        out("")
        out("Comparing local files to remote cache...")
        fingerprints = tuple((f.sha1, f.size) for f in bits.files)
        matched = set(await self.cc(MatchResources(fingerprints)))
        new_files = [f for f in bits.files if (f.sha1, f.size) not in matched]
        out("Packaging files to upload...")
        async with self.clock.threaded_io():
            contents = await anyio.to_thread.run_sync(
                lambda: dict((f.path, data) for f, data in bits.iter_contents([f.path for f in new_files]))
            )
            uploaded = await anyio.to_thread.run_sync(
                lambda: build_package(new_files, contents.__getitem__) if new_files else b""
            )
        new_bytes = sum(f.size for f in new_files)
        out(
            f" {len(bits.files)} files, {format_bytes(new_bytes)} to upload, "
            f"{len(bits.files) - len(new_files)} already on the platform"
        )
        out("Uploading files...")
        await self.cc(UploadBits(app.guid, tuple(bits.files), uploaded, c.user), timeout=120)
        out("Waiting for API to complete processing files...")
        out("")
        if no_start:
            if app.state is AppState.STARTED:
                await self.cc(StopApp(app.guid, c.user))
            return await self._show_app(app.guid, out, after_push=True)
        code = await self._stage(app, out, reason="push")
        if code:
            return code
        return await self._start_and_wait(app, out, restart=existed)

    def _trace_length(self) -> int:
        trace_id = current_trace.get()
        if self.recorder is None or not isinstance(trace_id, str):
            return 0
        return len(self.recorder.snapshot(trace_id))

    async def _save_trace(self, app: Any, kind: str, *, since: int = 0) -> None:
        """Keep what this conversation delivered (from delivery `since` on,
        after the user's command), for `cf trace APP`."""
        trace_id = current_trace.get()
        if self.recorder is None or not isinstance(trace_id, str):
            return
        deliveries = self.recorder.snapshot(trace_id)
        if since > 1:
            deliveries = deliveries[:1] + deliveries[since:]
        if not deliveries:
            return
        token = current_trace.set(None)  # saving is not part of the picture
        try:
            # Keyed per app: one command's trace id is shared by every app it
            # pushes, and a restarted platform counts its commands from 1 again.
            key = f"{trace_id}:{app.guid}"
            await self.cc(SaveTrace(app.guid, app.name, key, kind, tuple(deliveries)))
        except Exception as exc:  # noqa: BLE001 - a lost trace must not fail the push
            log.warning("saving-trace-failed", app=app.name, error=repr(exc))
        finally:
            current_trace.reset(token)

    async def _stage(self, app: Any, out: Out, *, reason: str) -> int:
        out("Staging app and tracing logs...")
        subscriber = f"staging-{self._subscriptions}"
        self._subscriptions += 1

        def sink(line: Any) -> None:
            if line.source_type == "STG":
                out(f"   {line.text}")

        self.tell("loggregator", Subscribe(app.guid, subscriber, sink))
        try:
            build = await self.cc(StageApp(app.guid, reason, self.config.user), timeout=self.config.staging_wait)
        finally:
            # Let the last staging lines already on their way arrive first.
            await self.clock.sleep(0.01)
            self.tell("loggregator", Unsubscribe(app.guid, subscriber))
        if build.state is not BuildState.STAGED:
            out("")
            out(f"Error staging application: {build.error}")
            out("FAILED")
            return 1
        out("")
        return 0

    async def _start_and_wait(self, app: Any, out: Out, *, restart: bool) -> int:
        """Steps 11-12: desire the app's instances, then wait for them as cf does."""
        out(f"Waiting for app {app.name} to start...")
        out("")
        await self.cc(StartApp(app.guid, self.config.user, restart=restart))
        return await self._wait_started(app, out)

    async def _wait_started(self, app: Any, out: Out) -> int:
        c = self.config
        started = self.clock.monotonic()
        last_progress = ""
        while app.instances > 0:  # scaled to zero: nothing to wait for, as cf says "0/0"
            instances = await self.cc(GetAppInstances(app.guid))
            running = sum(1 for i in instances if i.state == "RUNNING")
            starting = sum(1 for i in instances if i.state == "STARTING" and i.crash_count == 0)
            crashed = [i for i in instances if i.state == "CRASHED" or (i.state != "RUNNING" and i.crash_count > 0)]
            down = [i for i in instances if i.state == "DOWN"]
            if instances and running == len(instances):
                break
            if instances and running > 0 and starting == 0:
                break  # some up, the rest crashed or unplaceable: cf calls that started
            if instances and running == 0 and starting == 0 and (crashed or down):
                out(str(StartUnsuccessful()))
                out("")
                if down and not crashed:
                    out(f"{len(down)} of {len(instances)} instances could not be placed: {down[0].details}")
                out(f"TIP: use 'cf logs {app.name} --recent' for more information")
                out("FAILED")
                return 1
            progress = f"   {running} of {len(instances)} instances running, {starting} starting"
            if crashed:
                progress += f", {len(crashed)} crashed"
            if down:
                progress += f", {len(down)} down"
            if progress != last_progress and instances:
                out(progress)
                last_progress = progress
            if self.clock.monotonic() - started > c.start_timeout:
                out("Start app timeout")
                out("")
                out(f"TIP: use 'cf logs {app.name} --recent' for more information")
                out("FAILED")
                return 1
            await self.clock.sleep(c.poll_interval)
        out("")
        return await self._show_app(app.guid, out, after_push=True)

    async def _show_app(self, app_guid: str, out: Out, *, after_push: bool = False) -> int:
        app, droplet, instances = await self.cc(GetAppSummary(app_guid))
        for line in render.app_summary(app, droplet, instances):
            out(line)
        return 0

    # --- the other commands -------------------------------------------------------------------

    async def _cmd_apps(self, command: Command, message: CliCommand) -> int:
        out = message.out
        out(self._header("Getting apps"))
        out("")
        apps = await self.cc(ListApps(), timeout=60)
        if not apps:
            out("No apps found")
            return 0
        for line in render.apps_table(apps):
            out(line)
        return 0

    async def _cmd_app(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        if command.args.guid:
            out(app.guid)
            return 0
        out(self._header("Showing health and status for", app.name))
        out("")
        return await self._show_app(app.guid, out)

    async def _cmd_scale(self, command: Command, message: CliCommand) -> int:
        out = message.out
        args = command.args
        app = await self._app(args.app)
        if args.instances is None and args.memory is None and args.disk is None:
            out(self._header("Showing current scale of", app.name))
            out("")
            return await self._show_app(app.guid, out)
        try:
            spec = apply_flags(
                default_spec(app.name),
                instances=number(args.instances, "-i"),
                memory=args.memory,
                disk=args.disk,
            )
        except ValueError as exc:
            raise IncorrectUsage(f"Incorrect Usage: {exc}") from None
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
            return await self._wait_started(changed, out)
        return await self._show_app(app.guid, out)

    async def _cmd_start(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        out(self._header("Starting", app.name))
        if app.state is AppState.STARTED:
            out("")
            out(f"App '{app.name}' is already started.")
            out("OK")
            return 0
        out("")
        if app.droplet_guid is None:
            code = await self._stage(app, out, reason="push")
            if code:
                return code
        return await self._start_and_wait(app, out, restart=False)

    async def _cmd_stop(self, command: Command, message: CliCommand) -> int:
        out = message.out
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

    async def _cmd_restart(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        out(self._header("Restarting", app.name))
        out("")
        if app.droplet_guid is None:
            raise NotStaged(f"App {app.name} has not been staged: push or restage it first")
        out("Stopping app...")
        out("")
        try:
            return await self._start_and_wait(app, out, restart=True)
        finally:
            await self._save_trace(app, "restart")

    async def _cmd_restage(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        out(self._header("Restaging", app.name))
        out("")
        out("This action will cause app downtime.")
        out("")
        try:
            code = await self._stage(app, out, reason="restage")
            if code:
                return code
            if app.state is not AppState.STARTED:
                return await self._show_app(app.guid, out)
            return await self._start_and_wait(app, out, restart=True)
        finally:
            await self._save_trace(app, "restage")

    async def _cmd_delete(self, command: Command, message: CliCommand) -> int:
        out = message.out
        args = command.args
        validate_app_name(args.app)
        if not args.force:
            if message.confirm is None:
                raise IncorrectUsage(
                    f"Incorrect Usage: deleting asks for confirmation; use 'delete {args.app} -f' when not at a terminal"
                )
            if not message.confirm(f"Really delete the app {args.app}?"):
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

    async def _cmd_logs(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        out(f"Retrieving logs for app {app.name} in org {self.config.org} / space {self.config.space} as {self.config.user}...")
        out("")
        if command.args.recent:
            for line in await self.ask("loggregator", RecentLogs(app.guid)):
                out(format_log_line(line))
            return 0
        subscriber = f"tail-{self._subscriptions}"
        self._subscriptions += 1
        self.tell("loggregator", Subscribe(app.guid, subscriber, lambda line: out(format_log_line(line))))
        try:
            await asyncio.Event().wait()  # until the caller cancels the tail (Ctrl-C)
        finally:
            if self.actor_ref.is_alive():
                self.system.tell("loggregator", Unsubscribe(app.guid, subscriber))
        return 0

    async def _cmd_events(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        out(self._header("Getting events for", app.name))
        out("")
        events = await self.cc(GetEvents(app.guid))
        for line in render.events_table(events):
            out(line)
        return 0

    async def _cmd_cells(self, command: Command, message: CliCommand) -> int:
        out = message.out
        out("Getting cells...")
        out("")
        presences = await self.ask("bbs", ListCells())
        infos = []
        for presence in sorted(presences, key=lambda p: (p.cell_index, p.cell_id)):
            try:
                infos.append(await self.ask(presence.cell_id, CellInfo(), timeout=2))
            except Exception:  # noqa: BLE001 - a cell that does not answer is shown as such
                infos.append(
                    {
                        "cell_id": presence.cell_id,
                        "zone": presence.zone,
                        "state": "unresponsive",
                        "memory_used": 0,
                        "memory_total": presence.memory_mb,
                        "disk_used": 0,
                        "disk_total": presence.disk_mb,
                        "containers_used": 0,
                        "containers_total": presence.containers,
                        "instances": 0,
                        "running": 0,
                        "tasks": 0,
                    }
                )
        for line in render.cells_table(infos):
            out(line)
        return 0

    async def _cmd_trace(self, command: Command, message: CliCommand) -> int:
        out = message.out
        app = await self._app(command.args.app)
        trace = await self.cc(GetTrace(app.guid))
        if trace is None:
            raise _NoTrace()
        diagram = render.mermaid(trace["deliveries"], title=f"cf {trace['kind']} {app.name}")
        for target, kind in ((command.args.svg, "svg"), (command.args.html, "html")):
            if target:
                from actors.cli.pictures import write_picture

                path = Path(message.cwd) / target
                async with self.clock.threaded_io():
                    await anyio.to_thread.run_sync(write_picture, trace["deliveries"], diagram, path, kind)
                out(f"Wrote {kind.upper()} to {path}")
        if not (command.args.svg or command.args.html):
            for line in diagram.rstrip("\n").split("\n"):
                out(line)
        return 0

    async def _cmd_help(self, command: Command, message: CliCommand) -> int:
        for line in help_text(command.args.topic):
            message.out(line)
        return 0


class _NoTrace(PlatformError):
    code = "NoTrace"

    def __init__(self) -> None:
        super().__init__("no push, restart or restage of this app has been recorded yet")


def _explicit(spec: AppSpec) -> set[str]:
    """Fields a manifest set to something other than the default."""
    defaults = AppSpec(name=spec.name)
    fields = set()
    for f in dataclasses.fields(AppSpec):
        if f.name in ("name", "path"):
            continue
        if getattr(spec, f.name) != getattr(defaults, f.name):
            fields.add(f.name)
    return fields


_FLAG_FIELDS = {
    "instances": "instances",
    "memory": "memory_mb",
    "disk": "disk_mb",
    "buildpacks": "buildpacks",
    "command": "command",
    "stack": "stack",
    "health_check_type": "health_check_type",
    "health_check_http_endpoint": "health_check_http_endpoint",
    "timeout": "timeout_s",
    "no_route": "no_route",
    "random_route": "random_route",
}


def _map_flag_fields(flags: set[str]) -> set[str]:
    return {_FLAG_FIELDS[f] for f in flags if f in _FLAG_FIELDS}


def number(value: str | None, flag: str) -> int | None:
    """A flag's whole-number value, or cf's Incorrect Usage."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise IncorrectUsage(f"Incorrect Usage: invalid argument for flag '{flag}' (expected int > 0)") from None
