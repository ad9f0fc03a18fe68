"""A 200 MB upload streams: to disk as it arrives, through the package
build in chunks, into the blob store and the resource pool. The Python heap
never holds it (traced allocations stay far under its size)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import zipfile

import aiohttp
import pytest

from protocol import blobs

pytestmark = pytest.mark.anyio

SIZE = 200 * 1024 * 1024


def _big_zip(path, size: int) -> str:
    """A stored (uncompressed) zip holding `size` bytes in one file; its sha1."""
    digest = hashlib.sha1()
    block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        with z.open("data/big.bin", "w", force_zip64=True) as out:
            for _ in range(size // len(block)):
                out.write(block)
                digest.update(block)
        z.writestr("app.py", b"print('big')\n")
    return digest.hexdigest()


async def test_a_200_mb_upload_keeps_memory_flat(api, tmp_path):
    archive = tmp_path / "big.zip"
    sha1 = _big_zip(archive, SIZE)
    _, spaces, _ = await api.call("GET", "/v3/spaces")
    manifest = b"applications:\n- name: big\n  memory: 64M\n"
    await api.call(
        "POST",
        f"/v3/spaces/{spaces['resources'][0]['guid']}/actions/apply_manifest",
        raw=manifest,
        ctype="application/x-yaml",
    )
    _, apps, _ = await api.call("GET", "/v3/apps?names=big")
    app = apps["resources"][0]["guid"]
    _, package, _ = await api.call(
        "POST", "/v3/packages", body={"type": "bits", "relationships": {"app": {"data": {"guid": app}}}}
    )
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with archive.open("rb") as fh:
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("resources", json.dumps([]))
            form.add_field("bits", fh, filename="package.zip", content_type="application/octet-stream")
            async with api.session.post(
                f"{api.base}/v3/packages/{package['guid']}/upload", data=form, headers=api.auth
            ) as response:
                body = await response.json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 200 and body["state"] == "READY", body
    assert peak < 48 * 1024 * 1024, f"the upload's peak traced memory was {peak / 2**20:.0f} MB"
    # The file reached the resource pool whole: the next push matches it.
    held = await api.platform.system.ask("blobstore", blobs.MatchResources(((sha1, SIZE),)))
    assert held == [(sha1, SIZE)]
    assert not list((api.platform.data_dir / "tmp").iterdir()), "the upload's temp file is left behind"
