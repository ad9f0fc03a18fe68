"""pip's requirements files, as far as the Python buildpack reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from actors.cell.buildpacks.base import pseudo_version, read_text
from protocol.errors import BuildpackCompileFailed

__all__ = ["Requirement", "read_requirements", "requirement"]

_REQ_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(
    rf"(?P<name>{_REQ_NAME})\s*(?:\[[A-Za-z0-9._,\s-]*\])?\s*"
    r"(?P<spec>(?:(?:===|==|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*)"
    r"(?:@\s*\S+\s*)?(?:;.*)?"
)


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    spec: str
    source: str  # "requirements.txt (line 3)"

    @property
    def version(self) -> str:
        # What pip would plausibly pick: the pin, else the lower bound, else made up.
        for op in ("===", "==", "~=", ">="):
            m = re.search(rf"(?:^|,){op}([A-Za-z0-9.+!_-]+)", self.spec)
            if m and "*" not in m[1]:
                return m[1]
        return pseudo_version(self.name)

    @property
    def module(self) -> str:
        return re.sub(r"[-.]+", "_", self.name.lower())


def requirement(text: str, source: str) -> Requirement:
    text = re.split(r"\s--\S", f" {text}", maxsplit=1)[0].strip()
    m = _REQUIREMENT.fullmatch(text)
    if not m:
        raise BuildpackCompileFailed(f"Invalid requirement: {text!r} ({source})")
    return Requirement(m["name"], re.sub(r"\s+", "", m["spec"]), source)


def read_requirements(app_dir: Path, rel: Path, seen: set[Path]) -> list[Requirement]:
    """Requirements of `rel` (and the files it includes with ``-r``)."""
    path = (app_dir / rel).resolve()
    root = app_dir.resolve()
    if root not in path.parents:
        raise BuildpackCompileFailed(f"{rel} is outside the app directory")
    if path in seen:
        return []
    seen.add(path)
    if not path.is_file():
        raise BuildpackCompileFailed(f"Could not open requirements file: {rel.as_posix()} does not exist")
    shown = path.relative_to(root).as_posix()
    reqs: list[Requirement] = []
    # Backslash-newline continues a line, as pip reads it.
    text = re.sub(r"\\\r?\n", "", read_text(path, shown))
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        source = f"-r /tmp/app/{shown} (line {number})"
        if m := re.fullmatch(r"(?:-r|--requirement)(?:\s+|=)(\S+)", line):
            reqs.extend(read_requirements(app_dir, Path(shown).parent / m[1], seen))
        elif line.startswith("-"):
            continue  # --index-url, -c, -e, --find-links...: options pip takes; nothing to install here
        elif re.match(r"[a-z][a-z0-9+.-]*://", line):
            named = re.search(r"#egg=([A-Za-z0-9._-]+)", line) or re.search(
                r"/([A-Za-z0-9_.]+)-[^/-]+-[^/]*\.whl$", line
            )
            if named is None:
                raise BuildpackCompileFailed(f"Invalid requirement: {line!r} ({shown} line {number}): no #egg= name")
            reqs.append(Requirement(named[1], "", source))
        else:
            try:
                reqs.append(requirement(line, source))
            except BuildpackCompileFailed:
                raise BuildpackCompileFailed(f"Invalid requirement: {line!r} ({shown} line {number})") from None
    return reqs
