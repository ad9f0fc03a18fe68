"""A deterministic gzipped tar, written fast: what packages and droplets are.

tarfile builds each header through a dictionary, a pax check per field and
a struct.pack, and GzipFile wraps zlib in Python: most of what a small
package or droplet costs. Their entries are all alike (root-owned, no owner
names, one mtime, a directory or a regular file), so `TarStream` writes
their USTAR headers itself and compresses with zlib directly, byte for byte
what `tarfile.open(fileobj=GzipFile(filename="", mtime=...), mode="w",
format=PAX_FORMAT)` writes (property-tested against them); a name or size
USTAR cannot hold gets the pax header tarfile would write.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable
from typing import Any

__all__ = ["TarStream"]

_CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_NUL = b"\0"
_IDS = b"0000000\0" * 2  # uid, gid
# After the checksum: type, linkname, magic, uname, gname, devmajor, devminor, prefix, padding.
_AFTER_TYPE = _NUL * 100 + tarfile.POSIX_MAGIC + _NUL * (32 + 32 + 8 + 8 + 155 + 12)
_SPACES = sum(b"        ")
_FILE_TAIL = tarfile.REGTYPE + _AFTER_TYPE
_DIR_TAIL = tarfile.DIRTYPE + _AFTER_TYPE
_FILE_TAIL_SUM = sum(_FILE_TAIL) + _SPACES
_DIR_TAIL_SUM = sum(_DIR_TAIL) + _SPACES


def header(name: str, size: int, mode: int, mtime: int, directory: bool) -> bytes:
    """One entry's header block(s), as tarfile's PAX_FORMAT writes them."""
    if directory:
        name += "/"
    encoded = name.encode("utf-8")
    if len(encoded) <= 100 and encoded.isascii() and 0 <= size < 0o77777777777 and 0 <= mtime < 0o77777777777:
        head = b"%b%b%07o\0%b%011o\0%011o\0" % (encoded, _NUL * (100 - len(encoded)), mode, _IDS, size, mtime)
        tail = _DIR_TAIL if directory else _FILE_TAIL
        chksum = sum(head) + (_DIR_TAIL_SUM if directory else _FILE_TAIL_SUM)
        return b"%b%06o\0 %b" % (head, chksum, tail)
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarStream:
    """A deterministic tar of directories and regular files, gzipped into `sink`
    as `gzip.GzipFile(filename="", mtime=mtime, compresslevel=level)` would."""

    def __init__(self, sink: Any, mtime: int, level: int = 6) -> None:
        if level not in range(10) or level in (1, 9):
            # GzipFile marks levels 1 and 9 in its header; nothing here uses them.
            raise ValueError(f"compression level {level} is not one TarStream writes")
        self._sink = sink
        self._mtime = mtime
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
        self._crc = 0
        self._length = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        # gzip's header: magic, deflate, no flags, the mtime, no extra flags, OS unknown.
        sink.write(b"\x1f\x8b\x08\x00" + (mtime & 0xFFFFFFFF).to_bytes(4, "little") + b"\x00\xff")

    def _put(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            self._crc = zlib.crc32(data, self._crc)
            self._length += len(data)
            self._sink.write(self._deflate.compress(data))

    def directory(self, name: str) -> None:
        self._put(header(name, 0, 0o755, self._mtime, True))

    def file(self, name: str, mode: int, size: int, chunks: Iterable[bytes]) -> None:
        self._put(header(name, size, mode, self._mtime, False))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            self._put(chunk)
        if written != size:
            raise OSError(f"{name} changed size while it was archived")
        if size % _BLOCK:
            self._put(_NUL * (_BLOCK - size % _BLOCK))

    def close(self) -> None:
        """End the archive and the gzip stream (nothing may be added after)."""
        # Two zero blocks, then zeros to a whole record, as tarfile ends an archive.
        end = self._length + self._pending_size + 2 * _BLOCK
        self._put(_NUL * (2 * _BLOCK + (-end) % _RECORD))
        self._flush()
        sink = self._sink
        sink.write(self._deflate.flush())
        sink.write(self._crc.to_bytes(4, "little") + (self._length & 0xFFFFFFFF).to_bytes(4, "little"))
