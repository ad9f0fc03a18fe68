"""The binary buildpack: runs what the push names with -c."""

from __future__ import annotations

from pathlib import Path

from actors.cell.buildpacks.base import (
    Buildpack,
)
from protocol.buildpacks import BUILDPACK_VERSIONS

# --- binary -----------------------------------------------------------------------------------


class BinaryBuildpack(Buildpack):
    name = "binary_buildpack"
    short_name = "binary"
    version = BUILDPACK_VERSIONS["binary_buildpack"]
    language = "Binary"

    def detect(self, app_dir: Path) -> bool:
        # Any directory could hold a binary: it must be chosen by name.
        return False
