"""The seeds of a sweep, as `--seeds` writes them: `1-1000`, `7`, `1-10,20,30-40`.

`parse_seeds` reads them (ascending, each once, at most `MAX_SEEDS`);
`format_seeds` writes a list back in the same shorthand.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from actors.experiments.sweep_errors import InvalidSeeds

__all__ = ["MAX_SEED", "MAX_SEEDS", "format_seeds", "parse_seeds"]

#: More seeds than this in one sweep is a typo, not a plan.
MAX_SEEDS = 1_000_000
#: Seeds name folders and go into reports: keep them to a 64-bit integer.
MAX_SEED = 2**63 - 1

_PART = re.compile(r"(\d+)(?:-(\d+))?")


def parse_seeds(text: str) -> tuple[int, ...]:
    """The seeds `text` names, ascending; `InvalidSeeds` says what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InvalidSeeds(f"--seeds {text!r}: write seeds as 1-1000, 7 or 1-10,20 (a comma between parts)")
    ranges: list[tuple[int, int]] = []
    for part in parts:
        m = _PART.fullmatch(part)
        if m is None:
            raise InvalidSeeds(f"--seeds {text!r}: {part!r} is neither a seed (7) nor a range of seeds (1-1000)")
        first = _seed(text, m.group(1))
        last = _seed(text, m.group(2)) if m.group(2) is not None else first
        if last < first:
            raise InvalidSeeds(f"--seeds {text!r}: the range {part} runs backwards (write {last}-{first})")
        ranges.append((first, last))
    count = sum(last - first + 1 for first, last in ranges)
    if count > MAX_SEEDS:
        raise InvalidSeeds(f"--seeds {text!r}: {count:,} seeds; a sweep runs at most {MAX_SEEDS:,}")
    seeds = sorted(s for first, last in ranges for s in range(first, last + 1))
    for a, b in itertools.pairwise(seeds):
        if a == b:
            raise InvalidSeeds(f"--seeds {text!r}: seed {a} is named twice")
    return tuple(seeds)


def _seed(text: str, digits: str) -> int:
    # A number of thousands of digits is no seed, and int() would refuse it.
    seed = int(digits) if len(digits) <= len(str(MAX_SEED)) else MAX_SEED + 1
    if seed < 1:
        raise InvalidSeeds(f"--seeds {text!r}: seeds count from 1, not {seed}")
    if seed > MAX_SEED:
        raise InvalidSeeds(
            f"--seeds {text!r}: {digits[:24]}{'...' if len(digits) > 24 else ''} is larger than the largest seed, {MAX_SEED}"
        )
    return seed


def format_seeds(seeds: Iterable[int]) -> str:
    """`1-10,20`: the seeds (ascending) as `--seeds` takes them."""
    parts: list[str] = []
    run: list[int] = []
    for seed in sorted(seeds):
        if run and seed == run[-1] + 1:
            run.append(seed)
            continue
        if run:
            parts.append(_span(run))
        run = [seed]
    if run:
        parts.append(_span(run))
    return ",".join(parts)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"
