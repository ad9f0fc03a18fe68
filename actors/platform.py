"""The whole platform in one process: its supervision tree, data directory,
trace recorder, and the front door commands enter by.

    async with Platform(PlatformConfig(data_dir=...)) as platform:
        code = await platform.command(["push", "hello", "-p", "examples/python"], out=print)

Supervision: `components` (one_for_one, at most 10 restarts a minute)
starts, in order, `ccdb`, `blobstore`, `loggregator`, `bbs`, `auctioneer`,
`cells` (its own supervisor with `cell-1..N`), `cloud_controller` and `cli`.
Past its restart intensity it gives up and escalates to the root, `platform`,
which never gives up: it restarts the whole subtree (after a backoff), so a
storm of crashes costs the commands in flight, never the platform.
Components find each other by these names, so a restarted one is found again.

One data directory is used by one process at a time (an exclusive lock on
`<data>/lock`); a second platform on it fails with `DataDirInUse`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from actors.auctioneer.actor import AuctioneerActor, AuctioneerConfig
from actors.bbs.actor import BBS, BBSConfig
from actors.blobstore.actor import BlobStoreActor
from actors.ccdb.actor import CCDBActor
from actors.cell.actor import CellActor, CellConfig
from actors.cli.actor import CliActor, CliConfig
from actors.cloud_controller import CloudController, ControllerConfig
from actors.loggregator import LoggregatorActor
from actors.runtime import ActorSystem, AsyncActorRef, ChildSpec, Clock, RealClock, Supervisor
from actors.runtime.delivery import current_trace
from actors.runtime.errors import ActorDeadError
from actors.runtime.tracing import TraceRecorder
from actors.terminal import TerminalActor, Terminals
from actors.uaa import UaaActor, UaaConfig
from protocol.errors import DataDirUnusable, InvalidToken, MinifoundryError, PlatformUnavailable
from protocol.messages import BBSSnapshot, CliCommand, CommandOutcome, VerifyToken
from protocol.quota import QuotaDefinition
from protocol.snapshots import BBSStatistics

__all__ = ["COMPONENT_NAMES", "SUPERVISOR_NAMES", "DataDirInUse", "Platform", "PlatformConfig", "actor_names"]

log = structlog.get_logger("minifoundry.platform")


#: The platform's named actors besides its cells (cell-1 .. cell-N), and the
#: supervisors above them (`platform` > `components` > `cells`): the names
#: faults may give.
COMPONENT_NAMES = ("ccdb", "blobstore", "loggregator", "bbs", "auctioneer", "uaa", "cloud_controller", "user", "cli")
SUPERVISOR_NAMES = ("platform", "components", "cells")


def actor_names(cells: int) -> tuple[str, ...]:
    """Every named actor of a platform of `cells` cells."""
    return (*SUPERVISOR_NAMES, *COMPONENT_NAMES, *(f"cell-{i}" for i in range(1, cells + 1)))


class DataDirInUse(MinifoundryError):
    """Another minifoundry process already serves this data directory."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformConfig:
    data_dir: Path
    cells: int = 4
    zones: int = 2
    cell_memory_mb: int = 8192
    cell_disk_mb: int = 32768
    cell_containers: int = 250
    seed: int = 0
    staging_seconds: float = 2.0
    ask_timeout: float = 5.0
    bbs: BBSConfig = BBSConfig()
    auctioneer: AuctioneerConfig = AuctioneerConfig()
    controller: ControllerConfig = ControllerConfig()
    cli: CliConfig = CliConfig()
    uaa: UaaConfig = UaaConfig()
    placement_tags: tuple[tuple[str, frozenset[str]], ...] = ()  # cell_id -> required tags
    # The org's quota; None: the `default` quota, its memory limit sized to
    # four times what the cells hold (operators overcommit; a push past it
    # is refused, one within it may still wait for room as DOWN instances).
    quota: QuotaDefinition | None = None
    # Cloud Controller's HTTP API on 127.0.0.1: a port (0: any free one), or
    # None for none (the in-process tests and experiments need none).
    api_port: int | None = None
    # Whether a crashed supervisor takes its children with it (OTP's links);
    # False only for an experiment's `break = "links"`.
    supervisor_links: bool = True

    def controller_config(self) -> ControllerConfig:
        quota = self.quota or QuotaDefinition(memory_limit_mb=4 * self.cells * self.cell_memory_mb)
        return dataclasses.replace(self.controller, quota=quota)

    def cell_config(self, index: int) -> CellConfig:
        cell_id = f"cell-{index}"
        tags = dict(self.placement_tags).get(cell_id, frozenset())
        return CellConfig(
            cell_id=cell_id,
            zone=f"z{(index - 1) % max(1, self.zones) + 1}",
            memory_mb=self.cell_memory_mb,
            disk_mb=self.cell_disk_mb,
            containers=self.cell_containers,
            placement_tags=tags,
            cell_index=index,
            work_dir=Path(self.data_dir) / "cells" / cell_id,
            staging_seconds=self.staging_seconds,
        )


class Platform:
    """Boots, runs and stops the platform on one data directory."""

    def __init__(self, config: PlatformConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.clock = clock if clock is not None else RealClock()
        self.system = ActorSystem(clock=self.clock, seed=config.seed, default_ask_timeout=config.ask_timeout)
        self.recorder = TraceRecorder(self.clock)
        self.terminals = Terminals()
        from actors.faults import Faults

        self.faults = Faults(self)
        self._lock_fd: int | None = None
        self._umask: int | None = None
        self._commands = 0
        self.started = False
        self.api: Any = None  # the ApiServer, when config.api_port is set

    # --- lifecycle ---------------------------------------------------------------------

    def _preflight(self) -> None:
        """Refuse, naming the file, a data directory holding something that is
        not minifoundry's: a platform must not boot into a crash loop."""
        d = self.data_dir
        if os.path.lexists(d) and not d.is_dir():
            raise DataDirUnusable(f"{d} is not a directory")
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            if d.stat().st_uid == os.getuid():
                d.chmod(0o700)  # the platform's data is its owner's alone
        except OSError as exc:
            raise DataDirUnusable(f"cannot create {d}: {exc.strerror or exc}") from None
        for sub in ("blobstore", "logs", "cells"):
            if os.path.lexists(d / sub) and not (d / sub).is_dir():
                raise DataDirUnusable(f"{d / sub} should be a directory, but is not; move it away")
        check_ccdb_file(d / "ccdb.sqlite3")

    def _take_lock(self) -> None:
        self._preflight()
        path = self.data_dir / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except IsADirectoryError:
            raise DataDirUnusable(f"{path} is a directory, not minifoundry's lock file; move it away") from None
        except OSError as exc:
            raise DataDirUnusable(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DataDirInUse(
                    f"{self.data_dir} is in use by minifoundry process {holder}; when it serves "
                    "(up, serve), commands run on it and 'python run.py down' stops it; "
                    "else choose another --data-dir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _count_boot(self) -> int:
        """This boot's number on the data directory (1 on fresh data)."""
        path = self.data_dir / "boots"
        try:
            boot = int(path.read_text(encoding="ascii").strip() or 0) + 1
        except (FileNotFoundError, ValueError):
            boot = 1
        tmp = path.with_name(".boots.tmp")
        tmp.write_text(f"{boot}\n", encoding="ascii")
        os.replace(tmp, path)
        return boot

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    async def start(self) -> Platform:
        self._take_lock()
        # Everything the platform writes (CC_DB, blobs, logs) is its owner's alone.
        self._umask = os.umask(0o077)
        try:
            boot = self._count_boot()
            if boot > 1:
                # A restart on the same data must not replay the last boot's
                # random stream: guids drawn from it would collide with the
                # rows that boot wrote. Still a function of the seed alone.
                self.system.rng.seed(f"{self.config.seed}/boot-{boot}")
            await self.system.__aenter__()
            self.system.seam.add_observer(self.recorder)
            children = self._children()
            links = self.config.supervisor_links
            components = ChildSpec(
                "components", lambda n: Supervisor.start(children, name=n, max_restarts=10, within=60, links=links)
            )
            self.root = Supervisor.start(
                [components], name="platform", max_restarts=None, restart_backoff=1.0, links=links
            )
            # Wait until the last child answers: everything before it is up.
            await self.system.clock.sleep(0)
            for _ in range(1000):
                if self.system.lookup("cli") is not None and self.system.lookup("cloud_controller") is not None:
                    break
                await asyncio.sleep(0)
            if self.config.api_port is not None:
                from actors.api.server import ApiServer

                # The API answers once UAA holds its keys (and the admin
                # password file a first boot writes is there to read).
                with contextlib.suppress(InvalidToken):
                    await self.system.ask("uaa", VerifyToken(""), timeout=self.system.clock.for_real(30.0))

                self.api = await ApiServer(self, self.config.api_port).start()
            self.started = True
            log.info("platform-started", data_dir=str(self.data_dir), cells=self.config.cells, api=self.api_url)
        except BaseException:
            await self.system.shutdown()
            self._release_lock()
            os.umask(self._umask)
            raise
        return self

    def _children(self) -> list[ChildSpec]:
        c = self.config
        d = self.data_dir

        def start_cell(i: int) -> Callable[[str], AsyncActorRef]:
            return lambda n: CellActor.start(c.cell_config(i), name=n)

        cells = [ChildSpec(f"cell-{i}", start_cell(i)) for i in range(1, c.cells + 1)]
        return [
            ChildSpec("ccdb", lambda n: CCDBActor.start(d / "ccdb.sqlite3", name=n, fault=self.faults.db)),
            ChildSpec("blobstore", lambda n: BlobStoreActor.start(d / "blobstore", name=n, fault=self.faults.blob)),
            ChildSpec("loggregator", lambda n: LoggregatorActor.start(d / "logs", name=n)),
            ChildSpec("bbs", lambda n: BBS.start(c.bbs, name=n)),
            ChildSpec("auctioneer", lambda n: AuctioneerActor.start(c.auctioneer, name=n)),
            ChildSpec(
                "cells",
                lambda n: Supervisor.start(
                    cells, name=n, max_restarts=len(cells) * 10 + 10, within=60, links=c.supervisor_links
                ),
            ),
            ChildSpec("uaa", lambda n: UaaActor.start(d / "uaa", c.uaa, name=n)),
            ChildSpec("cloud_controller", lambda n: CloudController.start(c.controller_config(), name=n)),
            ChildSpec("user", lambda n: TerminalActor.start(self.terminals, name=n)),
            ChildSpec("cli", lambda n: CliActor.start(c.cli, recorder=self.recorder, name=n)),
        ]

    @property
    def api_url(self) -> str | None:
        """Where the HTTP API answers (http://127.0.0.1:PORT), or None."""
        return self.api.url if self.api is not None else None

    async def stop(self) -> None:
        try:
            if self.api is not None:
                api, self.api = self.api, None
                await api.close()  # no request is in flight when the actors stop
            await self.system.shutdown()
        finally:
            self._release_lock()
            if self._umask is not None:
                os.umask(self._umask)
                self._umask = None
            self.started = False
            log.info("platform-stopped")

    async def __aenter__(self) -> Platform:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- the front door ----------------------------------------------------------------------

    def new_command_id(self) -> str:
        self._commands += 1
        return f"cmd-{self._commands}"

    async def command(
        self,
        argv: list[str] | tuple[str, ...],
        out: Callable[[str], None],
        *,
        cwd: str | os.PathLike[str] = ".",
        confirm: Callable[[str], Any] | None = None,
        timeout: float = 3600.0,
        command_id: str | None = None,
        err: Callable[[str], None] | None = None,
    ) -> int:
        """Run one cf command through the `cli` actor; return its exit code."""
        outcome = await self.run_command(
            argv, out, cwd=cwd, confirm=confirm, timeout=timeout, command_id=command_id, err=err
        )
        return outcome.exit_code

    async def run_command(
        self,
        argv: list[str] | tuple[str, ...],
        out: Callable[[str], None],
        *,
        cwd: str | os.PathLike[str] = ".",
        confirm: Callable[[str], Any] | None = None,
        timeout: float = 3600.0,
        command_id: str | None = None,
        err: Callable[[str], None] | None = None,
    ) -> CommandOutcome:
        """Run one cf command; `out` gets its lines (and its standard error
        lines too, unless `err` is given), `confirm` (if any) its questions;
        the reply says how it ended and by which named error."""
        command_id = command_id or self.new_command_id()
        cli = await self._cli()
        if cli is None:
            return _unavailable(out, "its cli did not come back within 30 s")
        self.terminals.open(command_id, out, confirm, err)
        self.recorder.open(command_id)
        token = current_trace.set(command_id)
        try:
            message = CliCommand(tuple(argv), command_id, os.fspath(cwd), interactive=confirm is not None)
            future = cli.ask(message, block=False, timeout=timeout)
        finally:
            current_trace.reset(token)
        try:
            try:
                outcome: CommandOutcome = await future
            except ActorDeadError:
                return _unavailable(out, "a component restarted while the command ran; run it again")
            # Its last lines may still be on their way to the terminal.
            await self.terminals.wait_for(command_id, outcome.lines, timeout=5.0, clock=self.clock)
            return outcome
        finally:
            self.terminals.close(command_id)

    async def _cli(self, wait: float = 30.0) -> Any:
        """The cli actor; while supervision brings the platform back, wait for it."""
        deadline = self.clock.monotonic() + wait
        while True:
            ref = self.system.lookup("cli")
            if ref is not None or self.clock.monotonic() >= deadline:
                return ref
            await self.clock.sleep(0.1)

    async def snapshot(self) -> BBSStatistics:
        return await self.system.ask("bbs", BBSSnapshot())

    async def settle(self, timeout: float = 60.0, interval: float = 0.5) -> bool:
        """Wait (platform time, bounded) until no instance is starting and no
        task is running: what one-shot commands do before they exit."""
        deadline = self.clock.monotonic() + timeout
        quiet = 0
        while self.clock.monotonic() < deadline:
            try:
                snap = await self.snapshot()
            except Exception:  # noqa: BLE001 - a missing BBS is not settled
                snap = None
            if snap is not None:
                quiet = quiet + 1 if snap.busy == 0 else 0
                if quiet >= 2:
                    return True
            await self.clock.sleep(interval)
        return False


def _unavailable(out: Callable[[str], None], why: str) -> CommandOutcome:
    error = PlatformUnavailable(f"The platform is restarting: {why}")
    out(str(error))
    out("FAILED")
    return CommandOutcome(1, error.code, str(error), 2)


def check_ccdb_file(path: Path) -> None:
    """Refuse a CC_DB file that is not an SQLite database, is damaged, or was
    written by newer code (DataDirUnusable, naming it)."""
    import sqlite3

    from actors.ccdb.schema import LATEST_VERSION

    if not os.path.lexists(path):
        return
    if not path.is_file():
        raise DataDirUnusable(f"{path} should be CC_DB's SQLite file, but is not a regular file")
    if path.stat().st_size == 0:
        return  # a database never written to: opened as new
    with path.open("rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        raise DataDirUnusable(f"{path} is not an SQLite database (CC_DB); move it away or choose another --data-dir")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (ok,) = conn.execute("PRAGMA quick_check").fetchone()
            if ok != "ok":
                raise DataDirUnusable(f"{path} is damaged ({ok}); restore it from a backup or move it away")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" in tables:
                (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
                if version > LATEST_VERSION:
                    raise DataDirUnusable(
                        f"{path} is at CC_DB schema version {version}, newer than this minifoundry ({LATEST_VERSION})"
                    )
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataDirUnusable(
            f"{path} is damaged or not CC_DB ({exc}); move it away or choose another --data-dir"
        ) from None
