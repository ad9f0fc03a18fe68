"""Apps: creating and updating them from a push's spec, finding and listing
them, and what a push may ask for (quota, stack, buildpacks, knobs)."""

from __future__ import annotations

import re
from typing import Any

from actors.cloud_controller.base import ControllerBase
from actors.runtime import handles
from protocol import ccdb
from protocol.buildpacks import buildpack_name
from protocol.errors import AppInvalid, AppNotFound, InvalidManifest, StackNotFound
from protocol.knobs import InstanceKnobs
from protocol.lrp import InstanceInfo
from protocol.manifest import AppSpec, default_route, show, validate_app_name
from protocol.messages import (
    CreateOrUpdateApp,
    CreateRoute,
    DeleteRoute,
    GetApp,
    ListAppRecords,
    ListApps,
    ListRoutes,
    MapRoute,
    PatchApp,
    UnmapRoute,
)
from protocol.records import AppRecord, AuditEvent, freeze

__all__ = ["Apps"]

# Words for a random route, drawn from the platform's seeded generator.
_WORDS = ("brave", "quiet", "lucky", "sunny", "rapid", "proud", "calm", "bold")
_ANIMALS = ("otter", "heron", "lynx", "panda", "gecko", "bison", "koala", "zebra")

# AppSpec field -> CC_DB column, for what a push may change on an existing app.
_COLUMNS = {
    "memory_mb": "memory_mb",
    "disk_mb": "disk_mb",
    "instances": "instances",
    "buildpacks": "buildpacks",
    "command": "command",
    "stack": "stack",
    "health_check_type": "health_check_type",
    "health_check_http_endpoint": "health_check_http_endpoint",
    "timeout_s": "health_check_timeout",
    "env": "env",
}


class Apps(ControllerBase):
    @handles(CreateOrUpdateApp, concurrent=True)
    async def _create_or_update(self, message: CreateOrUpdateApp) -> AppRecord:
        spec = message.spec
        for name in spec.buildpacks:
            buildpack_name(name)  # UnknownBuildpack for a name no cell has
        try:
            InstanceKnobs.from_env(spec.env_dict)
        except ValueError as exc:
            raise InvalidManifest(f"app {spec.name}: env: {exc}") from None
        self._check_stack(spec.stack)
        app = await self.db(ccdb.FindApp(spec.name, step=3))
        if app is not None:
            # An update reads and writes the app under its lock, as map,
            # unmap and scale do: a route mapped meanwhile is not lost.
            async with self._app_lock(app.guid):
                return await self._update(message, await self.db(ccdb.GetApp(app.guid, step=3)))
        routes = self._routes(spec, message.default_route)
        # As the push will start it: refused here, before any row is written.
        self._check_disk(spec.disk_mb)
        await self._check_quota(None, spec.memory_mb, spec.instances)
        app = await self.db(
            ccdb.CreateApp(
                guid=self.system.new_guid(),
                name=spec.name,
                actor=message.actor,
                memory_mb=spec.memory_mb,
                disk_mb=spec.disk_mb,
                instances=spec.instances,
                buildpacks=tuple(spec.buildpacks),
                command=spec.command,
                stack=spec.stack,
                health_check_type=spec.health_check_type,
                health_check_http_endpoint=spec.health_check_http_endpoint,
                health_check_timeout=spec.timeout_s,
                env=freeze(spec.env_dict),
                routes=routes,
                step=3,
            )
        )
        await self._unmapped(removed=app.routes)  # mapped now: no orphans
        self._api_log(app.guid, f"Created app with guid {app.guid}")
        return app

    async def _update(self, message: CreateOrUpdateApp, app: AppRecord) -> AppRecord:
        """An existing app's update from a push's spec (under its lock)."""
        spec, explicit = message.spec, message.explicit
        routes = self._route_update(spec, explicit, app, message.default_route)
        memory = spec.memory_mb if "memory_mb" in explicit else app.memory_mb
        instances = spec.instances if "instances" in explicit else app.instances
        self._check_disk(spec.disk_mb if "disk_mb" in explicit else app.disk_mb)
        await self._check_quota(app.guid, memory, instances)
        changes = _changes(spec, explicit, routes)
        if not changes:
            return app
        request = {"request": {k: _plain(v) for k, v in changes.items()}}
        before = app.routes
        app = await self.db(
            ccdb.UpdateApp(
                app.guid, freeze(changes), AuditEvent("audit.app.update", message.actor, freeze(request)), step=3
            )
        )
        # Routes unmapped (--no-route) outlive their mapping, as orphans; mapped ones are none.
        await self._unmapped(added=set(before) - set(app.routes), removed=app.routes)
        self._api_log(app.guid, f"Updated app with guid {app.guid} ({', '.join(sorted(changes))})")
        return app

    def _route_update(
        self, spec: AppSpec, explicit: frozenset[str], app: AppRecord, push: bool
    ) -> tuple[str, ...] | None:
        """An existing app's new routes, None for no change. As Cloud
        Controller applies a push: `no-route` unmaps them all, listed routes
        are mapped beside the ones it has (nothing is unmapped), and a push
        maps the default (or a random) route only to an app that has none."""
        if "no_route" in explicit and spec.no_route:
            return ()
        if "routes" in explicit and spec.routes:
            added = tuple(url for url in spec.routes if url not in app.routes)
            return (*app.routes, *added) if added else None
        if app.routes or not push:
            return None
        return self._routes(spec, push)

    def _routes(self, spec: AppSpec, push: bool) -> tuple[str, ...]:
        """A new app's routes: those asked for, a random one, or (on a push)
        the default (the app's name as a host: Cloud Controller is the one
        place that computes it)."""
        if spec.no_route:
            return ()
        if spec.routes:
            return tuple(spec.routes)
        if not push and not spec.random_route:
            return ()
        if spec.random_route:
            default_route(spec.name)  # the name must make a host first, as for the default
            return (default_route(f"{spec.name}-{self.rng.choice(_WORDS)}-{self.rng.choice(_ANIMALS)}"),)
        return (default_route(spec.name),)

    def _check_disk(self, disk_mb: int) -> None:
        """CC's MaxDiskQuotaPolicy: at once, not after every start has failed for want of disk."""
        most = self.config.max_app_disk_mb
        if disk_mb > most:
            raise AppInvalid(
                f"Disk quota too much disk requested (requested {disk_mb} MB - must be less than {most} MB)"
            )

    async def _check_quota(self, app_guid: str | None, memory_mb: int, instances: int) -> None:
        """Refuse what would take the org past its quota, counting its other started apps."""
        used_memory, used_instances = await self.db(ccdb.StartedUsage(app_guid))
        self.config.quota.check(
            memory_mb=memory_mb, instances=instances, used_memory_mb=used_memory, used_instances=used_instances
        )

    def _check_stack(self, stack: str) -> None:
        if stack not in self.config.stacks:
            raise StackNotFound(f"Stack '{stack}' does not exist")

    @handles(GetApp, concurrent=True)
    async def _get_app(self, message: GetApp) -> AppRecord:
        app = await self.db(ccdb.FindApp(message.name))
        if app is None:
            raise AppNotFound(message.name)
        return app

    @handles(ListRoutes, concurrent=True)
    async def _list_routes(self, _message: ListRoutes) -> list[tuple[str, tuple[str, ...]]]:
        mapped: dict[str, list[str]] = {url: [] for url in self._created_routes}
        for app in await self.db(ccdb.ListApps()):
            for url in app.routes:
                mapped.setdefault(url, []).append(app.guid)
        return [(url, tuple(guids)) for url, guids in sorted(mapped.items())]

    @handles(CreateRoute)
    async def _create_route(self, message: CreateRoute) -> str:
        url = _check_route(message.url)
        await self._unmapped(added=(url,))
        return url

    @handles(MapRoute, concurrent=True)
    async def _map_route(self, message: MapRoute) -> AppRecord:
        url = _check_route(message.url)
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            if url in app.routes:
                return app
            event = AuditEvent("audit.app.map-route", message.actor, freeze({"route": url}))
            app = await self.db(ccdb.UpdateApp(app.guid, freeze({"routes": (*app.routes, url)}), event))
        await self._unmapped(removed=(url,))
        return app

    @handles(UnmapRoute, concurrent=True)
    async def _unmap_route(self, message: UnmapRoute) -> AppRecord:
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            if message.url not in app.routes:
                return app
            event = AuditEvent("audit.app.unmap-route", message.actor, freeze({"route": message.url}))
            routes = tuple(r for r in app.routes if r != message.url)
            app = await self.db(ccdb.UpdateApp(app.guid, freeze({"routes": routes}), event))
        await self._unmapped(added=(message.url,))  # the route outlives its mapping, as in Cloud Foundry
        return app

    @handles(DeleteRoute, concurrent=True)
    async def _delete_route(self, message: DeleteRoute) -> bool:
        """Whether the route was deleted (not, with `only_if_unmapped`, when an app has it)."""
        wanted = message.url.lower()
        holders = [
            (app.guid, url) for app in await self.db(ccdb.ListApps()) for url in app.routes if url.lower() == wanted
        ]
        if holders and message.only_if_unmapped:
            return False
        for app_guid, url in holders:
            await self._unmap_route(UnmapRoute(app_guid, url, message.actor))
        await self._unmapped(removed=[u for u in self._created_routes if u.lower() == wanted])
        return True

    @handles(PatchApp, concurrent=True)
    async def _patch_app(self, message: PatchApp) -> AppRecord:
        """Everything checked first, then one write (with its audit event)."""
        name = None if message.name is None else validate_app_name(message.name)
        if message.stack is not None:
            self._check_stack(message.stack)
        for buildpack in message.buildpacks or ():
            buildpack_name(buildpack)  # UnknownBuildpack for a name no cell has
        async with self._app_lock(message.app_guid):
            app = await self._app(message.app_guid)
            wanted = {"name": name, "buildpacks": message.buildpacks, "stack": message.stack}
            changes = {k: v for k, v in wanted.items() if v is not None and v != getattr(app, k)}
            if not changes:
                return app
            event = AuditEvent("audit.app.update", message.actor, freeze({"request": {**changes}}))
            app = await self.db(ccdb.UpdateApp(app.guid, freeze(changes), event))
        self._api_log(app.guid, f"Updated app with guid {app.guid} ({', '.join(sorted(changes))})")
        return app

    @handles(ListAppRecords, concurrent=True)
    async def _list_app_records(self, _message: ListAppRecords) -> list[AppRecord]:
        return await self.db(ccdb.ListApps())

    @handles(ListApps, concurrent=True)
    async def _list_apps(self, _message: ListApps) -> list[tuple[AppRecord, tuple[InstanceInfo, ...]]]:
        apps = await self.db(ccdb.ListApps())
        return [(app, await self._instances(app)) for app in apps]


_ROUTE = re.compile(r"[a-z0-9*_]([a-z0-9_-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))+(/[^\s?#]*)?")


def _check_route(url: object) -> str:
    """A route as Cloud Controller keeps it: ``host.domain[/path]``, lower case."""
    if not isinstance(url, str) or len(url) > 255 or not _ROUTE.fullmatch(url.lower()):
        raise InvalidManifest(f"Route {show(url)} is not a valid route (host.domain[/path])")
    return url.lower()


def _changes(spec: AppSpec, explicit: frozenset[str], routes: tuple[str, ...] | None) -> dict[str, Any]:
    """The app columns a push changes: only what the user set."""
    changes: dict[str, Any] = {}
    for field_name, column in _COLUMNS.items():
        if field_name in explicit:
            value = getattr(spec, field_name)
            if field_name == "env":
                value = dict(value)
            elif field_name == "buildpacks":
                value = tuple(value)
            changes[column] = value
    if routes is not None:
        changes["routes"] = routes
    return changes


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "value"):
        return value.value
    return value
