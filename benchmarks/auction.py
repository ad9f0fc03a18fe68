"""Diego's scale, in one process: place N app instances on M cell actors by
bid rounds, and run them until every one is RUNNING.

    python run.py bench auction --cells 1000 --instances 250000
    python run.py bench auction --cells 4000 --instances 1000000
    python run.py bench auction --one-app --cells 4000 --instances 20000
    python run.py bench auction --table          # 25k/100, 100k/400, 250k/1000 side by side

Cloud Foundry's 2016 scale test ran 250,000 instances on about 1,000 cells;
its plan mixed 32 MB, 128 MB and 1 GB instances across apps of 1-25
instances. This desires such a mix at a real BBS actor and lets the real
auctioneer place it on real cell actors, then reports what Diego's own
simulation reports, on a real clock so waits are what a user would wait:
the time until every instance is placed (CLAIMED on a cell) and until
every instance is RUNNING (its cell started it and its health check
passed), auctions per second, rounds, distribution (stddev/mean of memory
per cell), wait time and attempts, failures, and the process's peak
memory. `--one-app` desires one app with all the instances (the case where
cells already holding the app must be scored against each other).
`--table` runs each size in its own process so each peak memory is its own.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SIZES = ((25_000, 100), (100_000, 400), (250_000, 1_000))

# The 2016 plan's instance sizes and how often each occurs in our mix.
MIX = ((32, 0.5), (128, 0.35), (1024, 0.15))


def make_apps(instances: int, seed: int) -> list[Any]:
    from actors.auctioneer.simulation import AppSpec

    rng = random.Random(seed)
    apps = []
    placed = 0
    n = 0
    sizes = [m for m, _ in MIX]
    weights = [w for _, w in MIX]
    while placed < instances:
        count = min(rng.randint(1, 25), instances - placed)
        memory = rng.choices(sizes, weights)[0]
        apps.append(AppSpec(f"app-{n}", count, memory, disk_mb=256))
        placed += count
        n += 1
    return apps


def cell_memory_for(apps: list[Any], cells: int, headroom: float = 1.25) -> int:
    total = sum(a.instances * a.memory_mb for a in apps)
    per_cell = total * headroom / cells
    return int(-(-per_cell // 1024) * 1024)  # whole GB


def one_app(instances: int) -> list[Any]:
    from actors.auctioneer.simulation import AppSpec

    return [AppSpec("app-0", instances, 32, disk_mb=256)]


async def run_once(
    instances: int, cells: int, zones: int, seed: int, *, single_app: bool = False, progress: Any = None
) -> dict[str, Any]:
    from actors.auctioneer.simulation import Cluster, distribution
    from actors.runtime import ActorSystem, RealClock

    progress = progress or (lambda _text: None)
    apps = one_app(instances) if single_app else make_apps(instances, seed)
    memory = cell_memory_for(apps, cells)
    containers = max(250, int(instances / cells * 2))
    # A real clock: waits and wall time are then what a user would wait.
    async with ActorSystem(clock=RealClock(), seed=seed, default_ask_timeout=600) as system:
        cluster = await Cluster.start(
            system,
            cells=cells,
            zones=zones,
            memory_mb=memory,
            disk_mb=containers * 256 * 2,
            containers=containers,
        )
        gc.collect()
        gc.freeze()  # the cluster's long-lived objects need no more collecting
        before = distribution(cluster.memory_used())
        started = time.perf_counter()
        progress(f"desiring {instances:,} instances on {cells:,} cells")
        cluster.desire(apps, startup_seconds=1.0)

        def show(what: str, counts: dict[str, int]) -> None:
            progress(
                f"{what}: {counts['placed']:,} placed, {counts['running']:,} running of {instances:,} "
                f"({time.perf_counter() - started:.1f} s)"
            )

        counts = await cluster.wait_placed(instances, timeout=24 * 3600, report=lambda c: show("placing", c))
        wall = time.perf_counter() - started
        running = await cluster.wait_running(counts["placed"], timeout=24 * 3600, report=lambda c: show("starting", c))
        running_wall = time.perf_counter() - started
        stats = await cluster.auction_stats()
        used = cluster.memory_used()
        result = {
            "instances": instances,
            "cells": cells,
            "zones": zones,
            "apps": len(apps),
            "cell_memory_mb": memory,
            "one_app": single_app,
            "placed": counts["placed"],
            "running": running["running"],
            "failed": counts["failed"],
            "wall_s": round(wall, 3),
            "placed_s": round(wall, 3),
            "running_s": round(running_wall, 3),
            "auctions_per_s": round(counts["placed"] / wall if wall else 0.0, 1),
            "rounds": stats.rounds,
            "distribution_before": round(before, 4),
            "distribution_after": round(distribution(used), 4),
            "wait_s": {"min": stats.wait_min, "mean": stats.wait_mean, "max": stats.wait_max},
            "attempts": {"min": stats.attempts_min, "mean": stats.attempts_mean, "max": stats.attempts_max},
            "failures_by_reason": dict(stats.failures_by_reason),
        }
        gc.unfreeze()
    from benchmarks.common import peak_rss_mb

    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _format(results: list[dict[str, Any]]) -> str:
    headers = [
        "instances",
        "cells",
        "placed",
        "failed",
        "placed s",
        "RUNNING s",
        "auctions/s",
        "rounds",
        "distr. after",
        "wait s min/mean/max",
        "attempts min/mean/max",
        "peak MB",
    ]
    rows = []
    for r in results:
        w, a = r["wait_s"], r["attempts"]
        rows.append(
            [
                f"{r['instances']:,}",
                f"{r['cells']:,}",
                f"{r['placed']:,}",
                f"{r['failed']:,}",
                f"{r['placed_s']:.2f}",
                f"{r['running_s']:.2f}",
                f"{r['auctions_per_s']:,.0f}",
                str(r["rounds"]),
                f"{r['distribution_after']:.4f}",
                f"{w['min']:.2f}/{w['mean']:.2f}/{w['max']:.2f}",
                f"{a['min']}/{a['mean']:.2f}/{a['max']}",
                f"{r['peak_rss_mb']:,.0f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(widths[i]) for i, h in enumerate(headers))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.rjust(widths[i]) for i, c in enumerate(row)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import add_json_option, at_least, emit, loop_name, progress_printer, run_loop

    p = argparse.ArgumentParser(prog="run.py bench auction", description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=at_least(1), default=1000)
    p.add_argument("--instances", type=at_least(0), default=250_000)
    p.add_argument("--zones", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--one-app", action="store_true", help="one app with every instance (32 MB each)")
    p.add_argument("--table", action="store_true", help="run 25k/100, 100k/400 and 250k/1000, one process each")
    add_json_option(p)
    args = p.parse_args(argv)
    info = sys.stderr if args.json == "-" else sys.stdout
    mix = "one app, 32 MB" if args.one_app else ", ".join(f"{m} MB x{w:.0%}" for m, w in MIX)
    print(
        f"Python {sys.version.split()[0]}; loop {loop_name()}; {args.zones} zones; seed {args.seed}; "
        f"instance mix {mix}",
        file=info,
        flush=True,
    )
    progress = progress_printer()
    if args.table:
        results = []
        for instances, cells in SIZES:
            progress(f"{instances:,} instances on {cells:,} cells")
            # Through run.py, which configures logging (the project's one place for it).
            cmd = [
                sys.executable,
                "run.py",
                "--loop",
                loop_name(),
                "bench",
                "auction",
                "--cells",
                str(cells),
                "--instances",
                str(instances),
                "--zones",
                str(args.zones),
                "--seed",
                str(args.seed),
                "--json",
                "-",
            ]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=False
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            results.append(json.loads(proc.stdout.strip().splitlines()[-1])["results"][0])
            progress(None)
            print(
                f"  {instances:,} instances on {cells:,} cells: placed {results[-1]['placed_s']:.2f} s, "
                f"RUNNING {results[-1]['running_s']:.2f} s",
                file=info,
                flush=True,
            )
    else:
        results = [
            run_loop(
                run_once(args.instances, args.cells, args.zones, args.seed, single_app=args.one_app, progress=progress)
            )
        ]
        progress(None)
    for r in results:
        r["loop"] = loop_name()
    if args.json != "-":
        print(_format(results))
        for r in results:
            if r["failures_by_reason"]:
                print(f"  failures at {r['instances']:,}: {r['failures_by_reason']}")
    emit({"bench": "auction", "loop": loop_name(), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
