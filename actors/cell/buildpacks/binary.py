"""The binary buildpack: runs what the push names with -c."""

from __future__ import annotations

from pathlib import Path

from actors.cell.buildpacks.base import (
    Buildpack,
)

# --- binary -----------------------------------------------------------------------------------


class BinaryBuildpack(Buildpack):
    name = "binary_buildpack"
    short_name = "binary"
    version = "1.1.11"
    language = "Binary"

    def detect(self, app_dir: Path) -> bool:
        # Any directory could hold a binary: it must be chosen by name.
        return False
