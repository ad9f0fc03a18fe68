"""The `blobstore` actor: packages, droplets and the resource pool on disk.

`Blob(op, kwargs)` runs one `BlobStore` method. `AssemblePackage` builds a
whole package from the bytes the CLI uploaded plus the files resource
matching found in the pool (step 5), then adds the new files to the pool.
`BlobInventory` compares what is held with what CC_DB refers to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from actors.appfiles import build_package, iter_package
from actors.blobstore.store import BlobStore
from actors.runtime import AsyncioActor
from protocol.errors import BlobCorrupt, BlobNotFound
from protocol.messages import AssemblePackage, Blob, BlobInventory

__all__ = ["BlobStoreActor"]

_OPS = frozenset(
    name for name in dir(BlobStore) if not name.startswith("_") and callable(getattr(BlobStore, name))
) - {"open", "close", "startup_cleanup"}


class BlobStoreActor(AsyncioActor):
    default_name = "blobstore"

    def __init__(self, root: Path, *, name: str = "blobstore", fault: Any = None) -> None:
        super().__init__(name=name)
        self.root = Path(root)
        self._fault = fault
        self.store: BlobStore | None = None

    async def on_start(self) -> None:
        self.store = BlobStore(self.root, io_guard=self.clock.threaded_io, fault=self._fault)
        await self.store.open()

    async def on_stop(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def on_receive(self, message: Any) -> Any:
        store = self.store
        assert store is not None
        if isinstance(message, Blob):
            if message.op not in _OPS:
                raise ValueError(f"blobstore has no operation {message.op!r}")
            return await getattr(store, message.op)(**message.kwargs)
        if isinstance(message, AssemblePackage):
            return await self._assemble(message)
        if isinstance(message, BlobInventory):
            return await self._inventory(message)
        return super().on_receive(message)

    async def _assemble(self, message: AssemblePackage) -> Any:
        store = self.store
        assert store is not None
        uploaded: dict[str, bytes] = {}
        if message.uploaded:
            async with self.clock.threaded_io():
                entries = await anyio.to_thread.run_sync(lambda: list(iter_package(message.uploaded)))
            uploaded = {f.path: data for f, data in entries}
        contents: dict[str, bytes] = {}
        new_resources: list[tuple[str, bytes]] = []
        for f in message.files:
            if f.path in uploaded:
                contents[f.path] = uploaded[f.path]
                new_resources.append((f.sha1, uploaded[f.path]))
            else:
                # Matched earlier: the pool must still hold it (and verified).
                try:
                    contents[f.path] = await store.get_resource(f.sha1)
                except BlobNotFound:
                    raise BlobNotFound(f"resource {f.sha1} for {f.path} is not in the resource pool") from None
        files = tuple(message.files)
        async with self.clock.threaded_io():
            package = await anyio.to_thread.run_sync(lambda: build_package(files, contents.__getitem__))
        info = await store.put_bytes(package)
        if new_resources:
            # Distinct sha1s only; the pool verifies each before storing.
            unique = dict(new_resources)
            await store.add_resources(list(unique.items()))
        return info

    async def _inventory(self, message: BlobInventory) -> dict[str, Any]:
        store = self.store
        assert store is not None
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
        return {
            "held": len(held),
            "orphans": sorted(held - referenced),
            "missing": sorted(referenced - held),
            "corrupt": sorted(corrupt),
        }
