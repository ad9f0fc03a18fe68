"""Staging: detect or pick the buildpacks, run supply and finalize, release
the process types (a Procfile and -c win), and build the droplet."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.cell.buildpacks.base import Buildpack, Out, read_text
from actors.cell.buildpacks.registry import BUILDPACKS, detect_buildpack, find_buildpack
from actors.cell.buildtree import BuildTree
from actors.cell.droplet import StagingInfo, write_droplet_file
from protocol.errors import (
    BuildpackCompileFailed,
    BuildpackReleaseFailed,
    NoAppDetectedError,
    PlatformError,
    StagingError,
)

__all__ = ["StagingResult", "parse_procfile", "stage", "stage_tree"]


def parse_procfile(text: str) -> dict[str, str]:
    """``type: command`` lines → process types. `BuildpackReleaseFailed` if malformed."""
    types: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([A-Za-z0-9_-]+)\s*:\s*(\S.*?)\s*", line)
        if not m:
            raise BuildpackReleaseFailed(f"Failed to read command from Procfile: line {number} is not 'type: command'")
        types[m[1]] = m[2]
    return types


@dataclass(frozen=True, slots=True)
class StagingResult:
    """What staging produced: the buildpacks that ran, the start command, the droplet."""

    detected_buildpack: str
    buildpacks: tuple[tuple[str, str], ...]  # (name, version) in the order they ran
    start_command: str
    process_types: tuple[tuple[str, str], ...]  # (type, command), sorted by type
    droplet_path: str
    droplet_sha256: str
    droplet_size: int


def _phase(error: type[PlatformError], bp: Buildpack, step: Callable[[], object]) -> object:
    """Run a buildpack phase; a buildpack that crashes fails its phase, as in CF."""
    try:
        return step()
    except PlatformError:
        raise
    except Exception as exc:  # a broken buildpack must fail staging, not the cell
        raise error(f"{bp.name} failed: {type(exc).__name__}: {exc}") from exc


def stage_tree(
    root: Any,
    buildpack_names: Sequence[str],
    command_override: str | None,
    out: Out,
    *,
    registry: Sequence[Buildpack] = BUILDPACKS,
) -> StagingInfo:
    """Stage the app in ``root/app``: detect or pick the buildpacks, supply
    each into ``root/deps/<i>``, finalize and release with the last. What
    staging decided comes back; the droplet is the tree as it is left.

    `root` is a build tree's root (`TreePath`) or a real directory: the
    buildpacks use the part of `pathlib.Path` both answer.
    """
    build = root / "app"
    if not build.is_dir():
        raise StagingError(f"Staging error: app directory {build} does not exist")
    if buildpack_names:
        chosen = [find_buildpack(n, registry) for n in buildpack_names]
        for bp in chosen[:-1]:
            if not bp.supports_supply:
                raise BuildpackCompileFailed(
                    f"{bp.name} does not support multi-buildpack: it can only be the last buildpack"
                )
    else:
        detected = detect_buildpack(build, registry)
        if detected is None:
            out("None of the buildpacks detected a compatible application")
            raise NoAppDetectedError()
        chosen = [detected]

    deps = root / "deps"
    try:
        for index, bp in enumerate(chosen):
            deps_dir = deps / str(index)
            deps_dir.mkdir(parents=True)

            def supply(bp: Buildpack = bp, deps_dir: Any = deps_dir) -> None:
                bp.supply(build, deps_dir, out)

            _phase(BuildpackCompileFailed, bp, supply)
        last = chosen[-1]
        last_deps = deps / str(len(chosen) - 1)
        _phase(BuildpackCompileFailed, last, lambda: last.finalize(build, last_deps, out))
        released = _phase(BuildpackReleaseFailed, last, lambda: last.release(build))
        if not isinstance(released, dict):
            raise BuildpackReleaseFailed(f"{last.name} release gave {type(released).__name__}, not process types")
        process_types = {str(k): str(v) for k, v in released.items()}
        if (build / "Procfile").is_file():
            process_types.update(parse_procfile(_read_procfile(build / "Procfile")))
        if command_override and command_override.strip():
            process_types["web"] = command_override
        start_command = process_types.get("web", "")
        if not start_command.strip():
            out("No start command specified by buildpack or via Procfile.")
            out("App will not start unless a command is provided at runtime.")
            raise BuildpackReleaseFailed(
                f"No start command detected by {last.name}: add a Procfile with a 'web:' line, or push with -c COMMAND"
            )
    except OSError as exc:
        raise StagingError(f"Staging error: {exc}") from exc
    return StagingInfo(
        detected_buildpack=last.detect_output,
        start_command=start_command,
        buildpacks=tuple((bp.name, bp.version) for bp in chosen),
        process_types=tuple(sorted(process_types.items())),
    )


def stage(
    app_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    buildpack_names: Sequence[str],
    command_override: str | None,
    out: Out,
    *,
    mtime: int = 0,
    registry: Sequence[Buildpack] = BUILDPACKS,
) -> StagingResult:
    """Stage the app directory `app_dir`; build the droplet at ``work_dir/droplet.tgz``.

    The app is staged in a build tree (`actors.cell.buildtree`), as a cell
    stages a package. `work_dir` must be absent or empty (or hold only
    ``app``, when `app_dir` is ``work_dir/app``). It receives what staging
    left, ``app/`` (the build directory) and ``deps/<i>/``, and the droplet;
    `app_dir` itself is left untouched otherwise.
    """
    src = Path(app_dir)
    work = Path(work_dir)
    build = work / "app"
    in_place = src.resolve() == build.resolve() if build.exists() else False
    if not src.is_dir():
        raise StagingError(f"Staging error: app directory {src} does not exist")
    try:
        work.mkdir(parents=True, exist_ok=True)
        leftovers = [p.name for p in work.iterdir() if not (in_place and p.name == "app")]
        if leftovers:
            raise StagingError(f"Staging error: work directory {work} is not empty ({sorted(leftovers)[0]})")
        tree = BuildTree.from_directory(src, "app")
    except OSError as exc:
        raise StagingError(f"Staging error: cannot prepare {work}: {exc}") from exc
    info = stage_tree(tree.root, buildpack_names, command_override, out, registry=registry)
    try:
        tree.write_to(work)
        droplet = write_droplet_file(tree, info, work / "droplet.tgz", mtime=mtime)
    except OSError as exc:
        raise StagingError(f"Staging error: {exc}") from exc
    return StagingResult(
        detected_buildpack=info.detected_buildpack,
        buildpacks=info.buildpacks,
        start_command=info.start_command,
        process_types=info.process_types,
        droplet_path=droplet.path,
        droplet_sha256=droplet.sha256,
        droplet_size=droplet.size,
    )


def _read_procfile(path: Any) -> str:
    try:
        return read_text(path, "Procfile")
    except BuildpackCompileFailed as exc:
        raise BuildpackReleaseFailed(f"Failed to read command from Procfile: {exc.message}") from None
