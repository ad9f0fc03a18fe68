"""Bits: resource matching, package uploads, and the blobs nobody refers to
(freed by deletes and expiry, or orphaned by a crash), with the cleanup jobs
Cloud Controller runs on its clock."""

from __future__ import annotations

from typing import Any

import structlog

from actors.cloud_controller.base import ControllerBase
from actors.runtime import handles
from actors.runtime.delivery import current_trace
from protocol import blobs, ccdb
from protocol.errors import PackageBitsAlreadyUploaded, StagingTimeExpired
from protocol.messages import CreatePackage, MatchResources, UploadBits, UploadPackage
from protocol.records import AuditEvent, FrozenDict, PackageRecord, freeze
from protocol.states import BuildState, PackageState

__all__ = ["Bits", "Reap"]

log = structlog.get_logger("minifoundry.cloud_controller")


class Reap:
    """Timer: the cleanup jobs (pending packages and builds, orphan blobs)."""


class Bits(ControllerBase):
    @handles(MatchResources, concurrent=True)
    async def _match(self, message: MatchResources) -> list[tuple[str, int]]:
        return await self.blob(blobs.MatchResources(message.fingerprints, step=4))

    @handles(UploadBits, concurrent=True)
    async def _upload(self, message: UploadBits) -> PackageRecord:
        app = await self._app(message.app_guid)
        package = await self.db(ccdb.CreatePackage(self.system.new_guid(), app.guid, step=5))
        await self.db(ccdb.UpdatePackage(package.guid, FrozenDict({"state": PackageState.PROCESSING_UPLOAD}), step=5))
        return await self._fill(package, blobs.AssemblePackage(message.files, message.uploaded), message.actor)

    @handles(CreatePackage, concurrent=True)
    async def _create_package(self, message: CreatePackage) -> PackageRecord:
        app = await self._app(message.app_guid)
        event = AuditEvent("audit.app.package.create", message.actor, freeze({"request": {"type": "bits"}}))
        return await self.db(ccdb.CreatePackage(self.system.new_guid(), app.guid, event=event, step=5))

    @handles(UploadPackage, concurrent=True)
    async def _upload_package(self, message: UploadPackage) -> PackageRecord:
        """Store an upload's bits, then make the package READY. Bits that
        cannot be stored (a hostile or broken zip, a pool file gone) leave
        the package AWAITING_UPLOAD, as if the upload never came."""
        package = await self.db(ccdb.GetPackage(message.package_guid, step=5))
        # Claimed with no await between check and claim: of two uploads to
        # one package, exactly one goes on.
        if package.state is not PackageState.AWAITING_UPLOAD or package.guid in self._uploading:
            raise PackageBitsAlreadyUploaded()
        self._uploading.add(package.guid)
        try:
            async with self._blob_lock:
                info = await self.blob(blobs.StorePackage(message.archive, message.matched))
                package = await self.db(
                    ccdb.FinishPackageUpload(package.guid, info.key, info.size, message.actor, step=5)
                )
        finally:
            self._uploading.discard(package.guid)
        freed = await self.db(ccdb.ExpireOldPackages(package.app_guid, keep=self.config.packages_kept))
        await self._delete_blobs(freed)
        return package

    async def _fill(self, package: PackageRecord, store: blobs.BlobOperation, actor: str) -> PackageRecord:
        """Store a PROCESSING_UPLOAD package's bits and make it READY (FAILED,
        if they cannot be stored), then expire the app's old packages."""
        # Storing the bits and recording the row happen under the blob lock,
        # so a concurrent delete cannot free the key in between (identical
        # bits dedupe onto one content-addressed blob).
        async with self._blob_lock:
            try:
                info = await self.blob(store)
            except Exception:
                await self.db(ccdb.UpdatePackage(package.guid, FrozenDict({"state": PackageState.FAILED}), step=5))
                raise
            package = await self.db(ccdb.FinishPackageUpload(package.guid, info.key, info.size, actor, step=5))
        freed = await self.db(ccdb.ExpireOldPackages(package.app_guid, keep=self.config.packages_kept))
        await self._delete_blobs(freed)
        return package

    async def _delete_blobs(self, keys: Any) -> None:
        """Delete blobs CC_DB no longer refers to. Under the blob lock, and
        only those still unreferenced now: a concurrent push of identical bits
        may have claimed a key since it was freed."""
        if not keys:
            return
        async with self._blob_lock:
            still_referenced = await self.db(ccdb.ReferencedBlobKeys())
            for key in sorted(set(keys) - set(still_referenced)):
                try:
                    await self.blob(blobs.DeleteBlob(key))
                except Exception as exc:  # noqa: BLE001 - an orphan is found and reported later, not fatal
                    log.warning("blob-delete-failed", key=key, error=repr(exc))

    async def _sweep_orphans(self, grace: float) -> int:
        """Delete blobs no CC_DB row refers to once they have been orphans for
        `grace` seconds. The grace outlasts any upload or staging in flight
        (a droplet is stored before CC_DB learns its key)."""
        referenced = await self.db(ccdb.ReferencedBlobKeys())
        inventory = await self.blob(blobs.TakeInventory(frozenset(referenced)))
        now = self.clock.monotonic()
        orphans = set(inventory.orphans)
        for key in list(self._orphans_seen):
            if key not in orphans:
                del self._orphans_seen[key]  # adopted by a row meanwhile
        doomed = []
        for key in sorted(orphans):
            first = self._orphans_seen.setdefault(key, now)
            if now - first >= grace:
                doomed.append(key)
        await self._delete_blobs(doomed)
        for key in doomed:
            self._orphans_seen.pop(key, None)
        if doomed:
            log.info("orphan-blobs-deleted", count=len(doomed))
        return len(doomed)

    async def _fail_stale_pending(self) -> int:
        """Fail uploads and builds that can no longer finish (their request or
        reply was lost): the cleanup jobs Cloud Controller runs on its clock."""
        now = self.clock.now()
        failed = 0
        for app in await self.db(ccdb.ListApps()):
            for package in await self.db(ccdb.ListPackages(app.guid)):
                if package.state in (PackageState.AWAITING_UPLOAD, PackageState.PROCESSING_UPLOAD):
                    if now - package.updated_at.timestamp() > self.config.max_pending_package_age:
                        await self.db(ccdb.UpdatePackage(package.guid, FrozenDict({"state": PackageState.FAILED})))
                        failed += 1
            for build in await self.db(ccdb.ListBuilds(app.guid)):
                if build.state is BuildState.STAGING and build.guid not in self._builds:
                    if now - build.created_at.timestamp() > self.config.staging_timeout + self.config.reap_interval:
                        error = str(StagingTimeExpired("Staging time expired: the build was lost"))
                        await self.db(ccdb.FailBuild(build.guid, error))
                        failed += 1
        return failed

    @handles(Reap, concurrent=True)
    async def _reap(self, _message: Reap) -> None:
        self.tell_self_later(self.config.reap_interval, Reap())
        token = current_trace.set(None)
        try:
            await self._fail_stale_pending()
            await self._sweep_orphans(grace=self.config.staging_timeout + self.config.reap_interval)
        except Exception as exc:  # noqa: BLE001 - try again next time
            log.warning("orphan-sweep-failed", error=repr(exc))
        finally:
            current_trace.reset(token)
