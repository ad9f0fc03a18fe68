"""The installed buildpacks, in Cloud Foundry's default detection order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from actors.cell.buildpacks.base import Buildpack
from actors.cell.buildpacks.binary import BinaryBuildpack
from actors.cell.buildpacks.go import GoBuildpack
from actors.cell.buildpacks.java import JavaBuildpack
from actors.cell.buildpacks.nodejs import NodejsBuildpack
from actors.cell.buildpacks.python import PythonBuildpack
from actors.cell.buildpacks.ruby import RubyBuildpack
from actors.cell.buildpacks.staticfile import StaticfileBuildpack
from protocol.buildpacks import BUILDPACK_NAMES, buildpack_name

__all__ = ["BUILDPACKS", "detect_buildpack", "find_buildpack"]

BUILDPACKS: tuple[Buildpack, ...] = (
    StaticfileBuildpack(),
    JavaBuildpack(),
    RubyBuildpack(),
    NodejsBuildpack(),
    GoBuildpack(),
    PythonBuildpack(),
    BinaryBuildpack(),
)
# What Cloud Controller checks a push against is what the cells can run.
assert tuple(bp.name for bp in BUILDPACKS) == BUILDPACK_NAMES


def find_buildpack(name: str, registry: Iterable[Buildpack] = BUILDPACKS) -> Buildpack:
    """The buildpack called `name` (``python``, ``python_buildpack`` or ``python-buildpack``)."""
    wanted = buildpack_name(name)  # UnknownBuildpack for a name the platform does not have
    for bp in registry:
        if bp.name == wanted:
            return bp
    raise AssertionError(f"{wanted} is named in protocol.buildpacks but not installed")


def detect_buildpack(app_dir: Path, registry: Iterable[Buildpack] = BUILDPACKS) -> Buildpack | None:
    """The first buildpack, in priority order, whose detect passes."""
    for bp in registry:
        if bp.detect(app_dir):
            return bp
    return None
