"""The `blobstore` actor: packages, droplets and the resource pool on disk,
one message type per operation (`protocol.blobs`).

`AssemblePackage` builds a whole package from the bytes the CLI uploaded
plus the files resource matching found in the pool (step 5), then adds the
new files to the pool. `TakeInventory` compares what is held with what
CC_DB refers to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.appfiles import iter_package, scan_upload
from actors.blobstore.store import BlobStore
from actors.runtime import handles
from actors.runtime.offload import in_thread
from actors.storage import StorageActor
from protocol import blobs
from protocol.errors import BlobCorrupt
from protocol.records import BlobInfo
from protocol.snapshots import BlobInventoryReport

__all__ = ["BlobStoreActor"]


class BlobStoreActor(StorageActor):
    default_name = "blobstore"

    OPERATIONS = {
        blobs.PutBytes: BlobStore.put_bytes,
        blobs.PutFile: BlobStore.put_file,
        blobs.GetBytes: BlobStore.get_bytes,
        blobs.CopyTo: BlobStore.copy_to,
        blobs.Exists: BlobStore.exists,
        blobs.BlobSize: BlobStore.size,
        blobs.VerifyBlob: BlobStore.verify,
        blobs.DeleteBlob: BlobStore.delete,
        blobs.ListBlobKeys: BlobStore.keys,
        blobs.BlobStats: BlobStore.stats,
        blobs.MatchResources: BlobStore.match_resources,
        blobs.AddResources: BlobStore.add_resources,
        blobs.GetResource: BlobStore.get_resource,
    }

    def __init__(self, root: Path, *, name: str = "blobstore", fault: Any = None) -> None:
        super().__init__(name=name, fault=fault)
        self.root = Path(root)

    def open_store(self) -> BlobStore:
        return BlobStore(self.root, io_guard=self.clock.threaded_io, fault=self._fault)

    @handles(blobs.AssemblePackage)
    async def _assemble(self, message: blobs.AssemblePackage) -> BlobInfo:
        store = self.store
        uploaded: dict[str, bytes] = {}
        if message.uploaded:
            async with self.clock.threaded_io():
                entries = await in_thread(lambda: list(iter_package(message.uploaded)))
            uploaded = {f.path: data for f, data in entries}
        # The files matched earlier must still be in the pool (and verify).
        return await store.assemble_package(message.files, uploaded)

    @handles(blobs.StorePackage)
    async def _store_package(self, message: blobs.StorePackage) -> BlobInfo:
        uploaded = None
        if message.archive is not None:
            archive = message.archive
            async with self.clock.threaded_io():
                uploaded = await in_thread(scan_upload, archive)
        return await self.store.put_package(uploaded, message.matched)

    @handles(blobs.TakeInventory)
    async def _inventory(self, message: blobs.TakeInventory) -> BlobInventoryReport:
        store = self.store
        held = set(await store.keys())
        referenced = set(message.referenced)
        corrupt: set[str] = set()
        if message.verify:
            for key in sorted(held & referenced):
                try:
                    if not await store.verify(key):
                        corrupt.add(key)
                except BlobCorrupt:
                    corrupt.add(key)
        return BlobInventoryReport(
            held=len(held),
            referenced=len(referenced),
            orphans=tuple(sorted(held - referenced)),
            missing=tuple(sorted(referenced - held)),
            corrupt=tuple(sorted(corrupt)),
        )
