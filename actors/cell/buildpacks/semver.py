"""The npm-style version ranges the Node.js buildpack picks Node versions by."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["exact_version", "semver_pick", "version_tuple"]


def semver_pick(spec: str, versions: Sequence[str]) -> str | None:
    """The highest of `versions` satisfying an npm-style range (a useful subset:
    ``||``, hyphen ranges, ``^ ~ >= > <= < =``, ``x``/``*`` wildcards)."""
    for version in sorted(versions, key=version_tuple, reverse=True):
        if any(_satisfies(version, alt.strip()) for alt in spec.split("||")):
            return version
    return None


def version_tuple(version: str) -> tuple[int, int, int]:
    parts = [int(p) for p in version.split(".")]
    return (parts + [0, 0, 0])[0], (parts + [0, 0, 0])[1], (parts + [0, 0, 0])[2]


def _satisfies(version: str, alternative: str) -> bool:
    v = version_tuple(version)
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alternative)
    if hyphen:
        alternative = f">={hyphen[1]} <={hyphen[2]}"
    if not alternative or alternative in ("*", "x", "X", "latest"):
        return True
    comparator = r"(>=|<=|>|<|=|\^|~)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+){0,2})"
    if not re.fullmatch(rf"(?:\s*{comparator}\s*)+", alternative):
        return False  # e.g. "lts/*": not a range this buildpack understands
    tokens = re.findall(comparator, alternative)
    for op, partial in tokens:
        parts = [p for p in partial.split(".") if p not in ("x", "X", "*")]
        nums = tuple(int(p) for p in parts)
        low = (nums + (0, 0, 0))[:3]
        if op in ("", "="):
            if v[: len(nums)] != nums:
                return False
        elif op == "^":
            if v[0] != low[0] or v < low:
                return False
        elif op == "~":
            keep = 2 if len(nums) >= 2 else 1
            if v[:keep] != nums[:keep] or v < low:
                return False
        elif (
            (op == ">=" and v < low)
            or (op == ">" and (v <= low if len(nums) == 3 else v[: len(nums)] <= nums))
            or (op == "<" and v >= low)
            or (op == "<=" and (v > low if len(nums) == 3 else v[: len(nums)] > nums))
        ):
            return False
    return True


def exact_version(constraint: str | None) -> str | None:
    if not constraint:
        return None
    m = re.fullmatch(r"\s*(?:==?|\^|~>?|v)?\s*(\d+(?:\.\d+){0,3}[A-Za-z0-9.+-]*)\s*", constraint)
    return m[1] if m else None
