"""`cf push`, as cf v8 does it: apply the manifest (creating or updating
the apps, the diff shown when a manifest file is used), then for each app
match resources and upload only the unknown files, stage while tracing the
staging logs, start, poll the instances and show the app. Also the staging
and the wait for instances that start, restart, restage and scale share."""

from __future__ import annotations

from pathlib import Path

import structlog

from actors.appfiles import AppBits, build_package, scan_app, scan_small_app
from actors.cli import render
from actors.cli.base import CliBase, Command, CommandFailed, Run, runs
from actors.cli.manifest_diff import diff_lines
from actors.cli.push_spec import push_plans
from actors.runtime.delivery import current_trace
from actors.runtime.offload import in_thread
from protocol.errors import AppNotFound
from protocol.messages import (
    CreateOrUpdateApp,
    GetApp,
    GetAppInstances,
    GetAppSummary,
    MatchResources,
    SaveTrace,
    StageApp,
    StartApp,
    StopApp,
    UploadBits,
)
from protocol.records import AppRecord
from protocol.states import AppState, BuildState

__all__ = ["START_TIMEOUT_LINES", "Push", "progress_line"]

log = structlog.get_logger("minifoundry.cli")

START_TIMEOUT_LINES = (
    "Start app timeout",
    "",
    "TIP: Application must be listening on the right port. Instead of hard coding the port, "
    "use the $PORT environment variable.",
    "",
)


def _size(n: int) -> str:
    """The progress bar's sizes: bytes below 1 KiB, else KiB/MiB/GiB with two decimals."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.02f} {unit}"
    raise AssertionError("unreachable")


def progress_line(total: int, seconds: float) -> str:
    """The upload bar's last state, as cf draws it with no terminal to size
    the bar by (cf's bar always takes at least a second to finish)."""
    return f" {_size(total)} / {_size(total)}  100.00% {max(1, int(seconds))}s"


class Push(CliBase):
    @runs("push")
    async def cmd_push(self, command: Command, run: Run) -> int:
        args = command.args
        c = self.config
        plans = push_plans(args, Path(run.message.cwd), warn=run.err)
        names = ", ".join(p.spec.name for p in plans)
        noun = "app" if len(plans) == 1 else "apps"
        run.out(f"Pushing {noun} {names} to org {c.org} / space {c.space} as {c.user}...")
        manifest = plans[0].manifest
        # Every app's bits are gathered before anything is asked of the
        # platform: a bad path or hostile archive changes nothing.
        gathered: list[AppBits] = []
        for plan in plans:
            source = Path(plan.spec.path or ".")
            # A small app directory is read here; anything bigger (or an
            # archive) on a worker thread.
            bits = scan_small_app(source)
            if bits is None:
                async with self.clock.threaded_io():
                    bits = await in_thread(scan_app, source)
            gathered.append(bits)
        existing: dict[str, AppRecord | None] = {}
        for plan in plans:
            try:
                existing[plan.spec.name] = await self.cc(GetApp(plan.spec.name))
            except AppNotFound:
                existing[plan.spec.name] = None
        if manifest is not None:
            run.out(f"Applying manifest file {manifest}...")
            run.out("")
            run.out("Updating with these attributes...")
            for line in diff_lines([(p.shown or {}, existing[p.spec.name]) for p in plans]):
                run.out(line)
        # One command may push several apps (a manifest's list): each app's
        # trace is the command's first arrow plus what its own push delivered.
        apps: list[tuple[AppRecord, int]] = []
        for plan in plans:
            trace_start = self._trace_length()
            push = CreateOrUpdateApp(plan.spec, plan.explicit, c.user, default_route=True)
            apps.append((await self.cc(push), trace_start))
        if manifest is not None:
            run.out("Manifest applied")
        code = 0
        for plan, bits, (app, trace_start) in zip(plans, gathered, apps, strict=True):
            existed = existing[plan.spec.name] is not None
            try:
                code = await self._push_bits(app, bits, existed, args.no_start, run)
            finally:
                await self._save_trace(app, "push", since=trace_start)
            if code != 0:
                break
        return code

    async def _push_bits(self, app: AppRecord, bits: AppBits, existed: bool, no_start: bool, run: Run) -> int:
        out = run.out
        c = self.config
        fingerprints = tuple((f.sha1, f.size) for f in bits.files if f.size > 0)
        matched = set(await self.cc(MatchResources(fingerprints))) if fingerprints else set()
        new_files = [f for f in bits.files if (f.sha1, f.size) not in matched and f.size > 0]
        empty = [f for f in bits.files if f.size == 0]
        uploaded = b""
        if new_files or empty:
            out("Packaging files to upload...")
            sending = [*new_files, *empty]
            async with self.clock.threaded_io():
                contents = await in_thread(
                    lambda: {f.path: data for f, data in bits.iter_contents([f.path for f in sending])}
                )
                uploaded = await in_thread(lambda: build_package(sending, contents.__getitem__))
            out("Uploading files...")
            started = self.clock.monotonic()
            await self.cc(UploadBits(app.guid, tuple(bits.files), uploaded, c.user), timeout=120)
            out(progress_line(len(uploaded), self.clock.monotonic() - started))
            out("")
        else:
            out("All files found in remote cache; nothing to upload.")
            await self.cc(UploadBits(app.guid, tuple(bits.files), uploaded, c.user), timeout=120)
        out("Waiting for API to complete processing files...")
        if no_start:
            if app.state is AppState.STARTED:
                out("Stopping Application...")
                await self.cc(StopApp(app.guid, c.user))
                out("Application Stopped")
            out("")
            return await self._show_app(app.guid, run, start_command=True)
        out("")
        await self._stage(app, run, reason="push", kind="push")
        out("")
        out(f"Waiting for app {app.name} to start...")
        out("")
        await self.cc(StartApp(app.guid, c.user, restart=existed))
        return await self._wait_started(app, run, kind="push")

    async def _save_trace(self, app: AppRecord, kind: str, *, since: int = 0) -> None:
        """Keep what this conversation delivered (from delivery `since` on,
        after the user's command), for `cf trace APP`."""
        trace_id = current_trace.get()
        if self.recorder is None or not isinstance(trace_id, str):
            return
        deliveries = self.recorder.rows(trace_id)
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

    async def _stage(self, app: AppRecord, run: Run, *, reason: str, kind: str) -> None:
        """Stage the app while tracing its staging logs; CommandFailed in the
        words of the command (`kind`: push, start, restage) if it fails."""
        out = run.out
        out("Staging app and tracing logs...")

        def staging_line(line: object) -> None:
            if getattr(line, "source_type", None) == "STG":
                for piece in str(getattr(line, "text", "")).rstrip("\r\n").split("\n"):
                    out(f"   {piece.rstrip(chr(13))}")

        subscription = self.subscribe(app.guid, staging_line, kind="staging")
        try:
            build = await self.cc(StageApp(app.guid, reason, self.config.user), timeout=self.config.staging_wait)
        finally:
            # Let the last staging lines already on their way arrive first.
            await self.clock.sleep(0.01)
            self.unsubscribe(app.guid, subscription)
        if build.state is BuildState.STAGED:
            return
        error = build.error or "StagingError - Staging error: staging failed"
        code = error.split(" - ")[0]
        if kind == "push" or (kind == "start" and code == "NoAppDetectedError"):
            raise CommandFailed(code, error)
        if code == "NoAppDetectedError":
            raise CommandFailed(
                code,
                f"Error staging application: {error}",
                "",
                "TIP: Use 'cf buildpacks' to see a list of supported buildpacks.",
            )
        raise CommandFailed(code, f"Error staging application: {error}")

    async def _wait_started(self, app: AppRecord, run: Run, *, kind: str, show: bool = True) -> int:
        """cf's poll of the web process: a line each poll (`Instances
        starting...`, or the instances' details), until one instance runs,
        every one has crashed, or CF_STARTUP_TIMEOUT passes; then the app.

        Push and restage end a crash with `Start unsuccessful` (push after
        the summary) and a timeout with `Start app timeout`; start and
        restart say `All instances crashed` and `Timed out waiting ...`;
        push writes its poll lines to stderr, as cf v8 does."""
        c = self.config
        say = run.err if kind == "push" else run.out
        started = self.clock.monotonic()
        while True:
            instances = await self.cc(GetAppInstances(app.guid))
            details = next((i.details for i in instances if i.details and i.state != "RUNNING"), "")
            say(f"Error starting instances: '{details}'" if details else "Instances starting...")
            if app.instances == 0 or any(i.state == "RUNNING" for i in instances):
                break
            if instances and len(instances) >= app.instances and all(i.state == "CRASHED" for i in instances):
                if kind in ("start", "restart"):
                    raise CommandFailed("StartUnsuccessful", "All instances crashed")
                lines = ["Start unsuccessful", "", f"TIP: use 'cf logs {app.name} --recent' for more information"]
                if kind == "push":
                    run.out("")
                    await self._show_app(app.guid, run, start_command=True)
                raise CommandFailed("StartUnsuccessful", *lines)
            if self.clock.monotonic() - started >= c.start_timeout:
                if kind in ("start", "restart"):
                    raise CommandFailed("StartAppTimeout", f"Timed out waiting for application '{app.name}' to start")
                raise CommandFailed(
                    "StartAppTimeout", *START_TIMEOUT_LINES, f"Use 'cf logs {app.name} --recent' for more information"
                )
            await self.clock.sleep(c.poll_interval)
        run.out("")
        if not show:
            return 0
        return await self._show_app(app.guid, run, start_command=kind == "push")

    async def _show_app(self, app_guid: str, run: Run, *, start_command: bool = False) -> int:
        app, droplet, instances = await self.cc(GetAppSummary(app_guid))
        for line in render.app_summary(app, droplet, instances, now=self.clock.now(), start_command=start_command):
            run.out(line)
        return 0
