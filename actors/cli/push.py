"""`cf push`, as the cf CLI does it: create (or update) the app, match
resources and upload only the unknown files, stage while tracing the staging
logs, start, wait for the instances, show the app. Also staging and the wait
for instances that start, restart and restage share."""

from __future__ import annotations

from pathlib import Path

import anyio
import structlog

from actors.appfiles import AppBits, build_package, scan_app
from actors.cli import render
from actors.cli.base import CliBase, Command, CommandFailed, Run, runs
from actors.cli.push_spec import PushPlan, push_plans
from actors.runtime.delivery import current_trace
from protocol.errors import AppNotFound, StartUnsuccessful
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
from protocol.units import format_bytes, format_mb

__all__ = ["Push"]

log = structlog.get_logger("minifoundry.cli")


class Push(CliBase):
    @runs("push")
    async def cmd_push(self, command: Command, run: Run) -> int:
        args = command.args
        plans = push_plans(args, Path(run.message.cwd), warn=lambda text: run.out(f"Warning: {text}"))
        code = 0
        for plan in plans:
            code = max(code, await self._push_one(plan, args.no_start, run))
        return code

    async def _push_one(self, plan: PushPlan, no_start: bool, run: Run) -> int:
        out = run.out
        c = self.config
        spec = plan.spec
        # One command may push several apps (a manifest's list): each app's
        # trace is the command's first arrow plus what its own push delivered.
        trace_start = self._trace_length()
        out(f"Pushing app {spec.name} to org {c.org} / space {c.space} as {c.user}...")
        if plan.manifest is not None:
            out(f"Applying manifest file {plan.manifest}...")
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
        app = await self.cc(CreateOrUpdateApp(spec, plan.explicit, c.user))
        try:
            return await self._push_bits(app, bits, existed, no_start, run)
        finally:
            await self._save_trace(app, "push", since=trace_start)

    async def _push_bits(self, app: AppRecord, bits: AppBits, existed: bool, no_start: bool, run: Run) -> int:
        out = run.out
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
                lambda: {f.path: data for f, data in bits.iter_contents([f.path for f in new_files])}
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
            return await self._show_app(app.guid, run)
        await self._stage(app, run, reason="push")
        return await self._start_and_wait(app, run, restart=existed)

    async def _save_trace(self, app: AppRecord, kind: str, *, since: int = 0) -> None:
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

    async def _stage(self, app: AppRecord, run: Run, *, reason: str) -> None:
        """Stage the app while tracing its staging logs; CommandFailed if it fails."""
        out = run.out
        out("Staging app and tracing logs...")

        def staging_line(line: object) -> None:
            if getattr(line, "source_type", None) == "STG":
                out(f"   {line.text}")  # type: ignore[attr-defined]

        subscription = self.subscribe(app.guid, staging_line, kind="staging")
        try:
            build = await self.cc(StageApp(app.guid, reason, self.config.user), timeout=self.config.staging_wait)
        finally:
            # Let the last staging lines already on their way arrive first.
            await self.clock.sleep(0.01)
            self.unsubscribe(app.guid, subscription)
        if build.state is not BuildState.STAGED:
            error = (build.error or "StagingError").split(" - ")[0]
            raise CommandFailed(error, "", f"Error staging application: {build.error}")
        out("")

    async def _start_and_wait(self, app: AppRecord, run: Run, *, restart: bool) -> int:
        """Steps 11-12: desire the app's instances, then wait for them as cf does."""
        run.out(f"Waiting for app {app.name} to start...")
        run.out("")
        await self.cc(StartApp(app.guid, self.config.user, restart=restart))
        return await self._wait_started(app, run)

    async def _wait_started(self, app: AppRecord, run: Run) -> int:
        out = run.out
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
                lines = [str(StartUnsuccessful()), ""]
                if down and not crashed:
                    lines.append(f"{len(down)} of {len(instances)} instances could not be placed: {down[0].details}")
                lines.append(f"TIP: use 'cf logs {app.name} --recent' for more information")
                raise CommandFailed("StartUnsuccessful", *lines)
            progress = f"   {running} of {len(instances)} instances running, {starting} starting"
            if crashed:
                progress += f", {len(crashed)} crashed"
            if down:
                progress += f", {len(down)} down"
            if progress != last_progress and instances:
                out(progress)
                last_progress = progress
            if self.clock.monotonic() - started > c.start_timeout:
                raise CommandFailed(
                    "StartAppTimeout",
                    "Start app timeout",
                    "",
                    f"TIP: use 'cf logs {app.name} --recent' for more information",
                )
            await self.clock.sleep(c.poll_interval)
        out("")
        return await self._show_app(app.guid, run)

    async def _show_app(self, app_guid: str, run: Run) -> int:
        app, droplet, instances = await self.cc(GetAppSummary(app_guid))
        for line in render.app_summary(app, droplet, instances):
            run.out(line)
        return 0
