"""An in-process cluster for auction experiments, as Diego's `simulation/`:
a BBS, the auctioneer and N cell actors, with work desired at the BBS and
placed by real bid rounds between real actors.

No Cloud Controller, no blob store, no disk: cells run modelled instances
only (their log lines go to an in-memory loggregator), so the auction and
the starting of instances are what is measured.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

from actors.auctioneer.actor import AuctioneerActor, AuctioneerConfig
from actors.bbs.actor import BBS, BBSConfig
from actors.cell.actor import CellActor, CellConfig
from actors.loggregator import LoggregatorActor
from actors.runtime import ActorSystem
from protocol.auction import AuctionConfig
from protocol.lrp import DesiredLRP
from protocol.messages import AuctioneerStats, CellInfo, DesireLRP, ListActualLRPs
from protocol.snapshots import AuctionStatistics, CellStatistics
from protocol.states import ActualLRPState, HealthCheckType

__all__ = ["AppSpec", "Cluster", "distribution"]


@dataclasses.dataclass(frozen=True, slots=True)
class AppSpec:
    """One app to deploy: instances of `memory_mb` each."""

    name: str
    instances: int
    memory_mb: int
    disk_mb: int = 1
    placement_tags: frozenset[str] = frozenset()
    volume_drivers: frozenset[str] = frozenset()


def distribution(values: Sequence[float]) -> float:
    """stddev/mean, Diego's measure of how evenly cells are loaded."""
    if not values:
        return 0.0
    mean = statistics.fmean(values)
    if mean == 0:
        return 0.0
    return statistics.pstdev(values) / mean


class Cluster:
    """Start with `await Cluster.start(system, cells)`; deploy; inspect."""

    def __init__(self, system: ActorSystem, cell_configs: Sequence[CellConfig]) -> None:
        self.system = system
        self.cell_configs = list(cell_configs)
        self.bbs: Any = None

    @classmethod
    async def start(
        cls,
        system: ActorSystem,
        *,
        cells: int,
        zones: int = 2,
        memory_mb: int = 100,
        disk_mb: int = 100_000,
        containers: int = 1000,
        auction: AuctionConfig | None = None,
        heartbeat_interval: float = 5.0,
        sync_interval: float = 3600.0,
        optional_tags: dict[int, frozenset[str]] | None = None,
        volume_drivers: dict[int, frozenset[str]] | None = None,
        bbs: BBSConfig | None = None,
        cell_class: type[CellActor] = CellActor,
    ) -> Cluster:
        configs = [
            CellConfig(
                cell_id=f"cell-{i}",
                zone=f"z{(i - 1) % zones + 1}",
                memory_mb=memory_mb,
                disk_mb=disk_mb,
                containers=containers,
                cell_index=i,
                optional_placement_tags=(optional_tags or {}).get(i, frozenset()),
                volume_drivers=(volume_drivers or {}).get(i, frozenset()),
                work_dir=None,
                heartbeat_interval=heartbeat_interval,
                sync_interval=sync_interval,
            )
            for i in range(1, cells + 1)
        ]
        cluster = cls(system, configs)
        # Cells stream their containers' log lines, as on the platform.
        LoggregatorActor.start(None, name="loggregator")
        # Convergence is left on but slow: placement must come from the
        # first bid rounds, not from retries.
        cluster.bbs = BBS.start(bbs or BBSConfig(convergence_interval=3600, presence_ttl=3600), name="bbs")
        AuctioneerActor.start(
            AuctioneerConfig(auction=auction or AuctionConfig(), cell_state_timeout=30), name="auctioneer"
        )
        for config in configs:
            cell_class.start(config, name=config.cell_id)
        await system.clock.sleep(0)
        # Every cell has said hello once the BBS lists them all.
        for _ in range(100):
            presences = await system.ask("bbs", _ListCells())
            if len(presences) == cells:
                break
            await system.clock.sleep(0.01)
        return cluster

    def desire(self, apps: Sequence[AppSpec], *, startup_seconds: float = 1.0, stay_starting: bool = False) -> None:
        """Desire every app at the BBS (each instance index is one auction).

        `stay_starting` keeps the instances starting (as the containers of
        Diego's simulation rep do), so each counts in the 0.25 starting weight.
        """
        if stay_starting:
            startup_seconds = 86_400.0
        for app in apps:
            # Use half the quota: the model kills instances over their quota.
            env = (
                ("MF_MEMORY_MB", f"{app.memory_mb / 2:g}"),
                ("MF_STARTUP_SECONDS", f"{startup_seconds:g}"),
            )
            self.system.tell(
                "bbs",
                DesireLRP(
                    DesiredLRP(
                        process_guid=app.name,
                        app_guid=app.name,
                        app_name=app.name,
                        instances=app.instances,
                        memory_mb=app.memory_mb,
                        disk_mb=app.disk_mb,
                        droplet_key=None,
                        start_command="./app",
                        health_check_type=HealthCheckType.PORT if stay_starting else HealthCheckType.PROCESS,
                        health_check_timeout_s=10 * 86_400.0 if stay_starting else 60.0,
                        env=env,
                        placement_tags=app.placement_tags,
                        volume_drivers=app.volume_drivers,
                    )
                ),
            )

    def _bbs_actor(self) -> BBS:
        actor = self.system.actor("bbs")
        assert isinstance(actor, BBS)
        return actor

    def counts(self) -> dict[str, int]:
        """Actual LRPs by state, from the BBS's statistics (no message sent)."""
        stats = self._bbs_actor().statistics()
        total = sum(a.counts.total for a in stats.apps)
        running = sum(a.counts.running for a in stats.apps)
        placed = running + sum(a.counts.starting for a in stats.apps)
        failed = stats.placement_failures
        return {
            "total": total,
            "placed": placed,
            "running": running,
            "unplaced": total - placed - failed,
            "failed": failed,
        }

    def _cell_counts(self) -> dict[str, int]:
        """Instances held and running on the cells, from two counters each,
        with the auctioneer's failures: cheap to poll, unlike `counts`."""
        held = running = 0
        for config in self.cell_configs:
            cell = self.system.actor(config.cell_id)
            if isinstance(cell, CellActor):
                h, r = cell.held()
                held += h
                running += r
        auctioneer = self.system.actor("auctioneer")
        failed = auctioneer.stats.failed if isinstance(auctioneer, AuctioneerActor) else 0
        return {"placed": held, "running": running, "failed": failed}

    async def _wait(self, cheap: Any, done: Any, timeout: float, report: Any) -> dict[str, int]:
        # Poll the cells' counters often; only when they say it is done,
        # confirm with the BBS's own books (a walk of every actual LRP).
        # While the BBS lags behind the cells, confirm again only after four
        # times what the last walk cost: the polling takes at most a fifth.
        # The cells' counters are read every 10 ms, or less often when one
        # reading costs more than a twentieth of that (thousands of cells).
        clock = self.system.clock
        start = clock.monotonic()
        confirm_at = start
        step = 0.01
        while True:
            now = clock.monotonic()
            quick = self._cell_counts()
            step = max(0.01, 20 * (clock.monotonic() - now))
            if report is not None:
                report(quick)
            late = now - start >= timeout
            if (cheap(quick) and now >= confirm_at) or late:
                counts = self.counts()
                if done(counts) or late:
                    if report is not None:
                        report(counts)
                    return counts
                confirm_at = clock.monotonic() + 4 * (clock.monotonic() - now)
            await clock.sleep(step)

    async def wait_placed(self, expected: int, *, timeout: float = 600.0, report: Any = None) -> dict[str, int]:
        """Until every expected auction has an outcome (placed or failed) at the BBS."""
        return await self._wait(
            lambda c: c["placed"] + c["failed"] >= expected,
            lambda c: c["total"] >= expected and c["unplaced"] == 0,
            timeout,
            report,
        )

    async def wait_running(self, expected: int, *, timeout: float = 600.0, report: Any = None) -> dict[str, int]:
        """Until `expected` instances are RUNNING at the BBS."""
        return await self._wait(lambda c: c["running"] >= expected, lambda c: c["running"] >= expected, timeout, report)

    async def cell_infos(self) -> list[CellStatistics]:
        return [await self.system.ask(c.cell_id, CellInfo()) for c in self.cell_configs]

    def _cell(self, cell_id: str) -> CellActor:
        cell = self.system.actor(cell_id)
        assert isinstance(cell, CellActor)
        return cell

    def placements(self) -> dict[str, dict[str, int]]:
        """cell_id -> {process_guid: instances}, from the cells' containers."""
        result: dict[str, dict[str, int]] = {}
        for config in self.cell_configs:
            held: dict[str, int] = {}
            for container in self._cell(config.cell_id).containers():
                held[container.process_guid] = held.get(container.process_guid, 0) + 1
            result[config.cell_id] = held
        return result

    def memory_used(self) -> list[int]:
        return [self._cell(config.cell_id).statistics().memory_used for config in self.cell_configs]

    async def failures(self) -> dict[tuple[str, int], str]:
        actuals = await self.system.ask("bbs", ListActualLRPs(), timeout=60.0)
        return {
            (a.process_guid, a.index): a.placement_error
            for a in actuals
            if a.placement_error and a.state is ActualLRPState.UNCLAIMED
        }

    async def auction_stats(self) -> AuctionStatistics:
        return await self.system.ask("auctioneer", AuctioneerStats())


def _ListCells() -> Any:
    from protocol.messages import ListCells

    return ListCells()


def spread_ok(counts: Sequence[float], tolerance: float = 1.0) -> bool:
    """Every value within `tolerance` of the mean (Diego's +-1 check)."""
    if not counts:
        return True
    mean = sum(counts) / len(counts)
    return all(math.fabs(c - mean) <= tolerance for c in counts)
