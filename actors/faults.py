"""Breaking the platform on purpose: every fault kind behind one controller.

`Faults` is what the REPL's fault commands and experiment files drive:

- messages (at the runtime's delivery seam): drop, delay, duplicate,
  reorder, matching sender / receiver / message type, with a probability
  and a duration; partitions of actor groups, symmetric or one-way;
- components: kill an actor (a cell's instances are gone; its supervisor
  brings it back empty), pause and resume any actor, drain a cell;
- storage: blob store and CC_DB operations failing or slow, and a stored
  blob corrupted on disk (found when it is next read);
- apps: crash storms in running instances.

`heal()` removes them all. Every random choice uses the system's seeded
generator, so the same seed makes the same decisions.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypedDict

import structlog

from actors.runtime import ActorSystem, FaultRule
from protocol import ccdb
from protocol.errors import BlobStoreUnavailable, DatabaseUnavailable
from protocol.messages import CrashInstances, EvacuateCell, ListCells

__all__ = ["FAULT_COMMANDS", "Faults", "StorageFaults", "StorageRule", "run_fault_command"]

log = structlog.get_logger("minifoundry.faults")


@dataclasses.dataclass(slots=True)
class StorageRule:
    """Fail (with `probability`) or slow (`delay` s) matching storage operations."""

    ops: str  # a pattern over op names: "blob.put", "blob.*", "ccdb.write"
    probability: float = 1.0
    delay: float = 0.0
    fail: bool = True
    until: float | None = None
    rule_id: int = 0
    hits: int = 0

    def describe(self, store: str) -> str:
        what = "fail" if self.fail else "slow"
        extra = f" p={self.probability:g}" if self.fail and self.probability < 1 else ""
        extra += f" +{self.delay:g}s" if self.delay else ""
        return f"{store} {what} {self.ops}{extra}"


class StorageFaults:
    """The `fault` hook a store awaits before each operation."""

    def __init__(self, name: str, error: type[Exception], clock_rng: Callable[[], tuple[Any, Any]]) -> None:
        self.name = name
        self.error = error
        self._clock_rng = clock_rng
        self.rules: list[StorageRule] = []
        self._ids = itertools.count(1)
        self.failed = 0
        self.slowed = 0

    def add(self, rule: StorageRule) -> StorageRule:
        rule.rule_id = next(self._ids)
        self.rules.append(rule)
        return rule

    def clear(self) -> int:
        n = len(self.rules)
        self.rules.clear()
        return n

    async def __call__(self, op: str) -> None:
        if not self.rules:
            return
        clock, rng = self._clock_rng()
        now = clock.monotonic()
        self.rules = [r for r in self.rules if r.until is None or r.until > now]
        for rule in self.rules:
            if not fnmatch.fnmatchcase(op, rule.ops):
                continue
            rule.hits += 1
            if rule.delay:
                self.slowed += 1
                await clock.sleep(rule.delay)
            if rule.fail and (rule.probability >= 1.0 or rng.random() < rule.probability):
                self.failed += 1
                raise self.error(f"injected fault: {op} failed")


class Host(Protocol):
    """What faults are injected into: a running platform's system and data."""

    system: ActorSystem
    data_dir: Path


class Faults:
    """All fault kinds for one running platform."""

    def __init__(self, platform: Host) -> None:
        self.platform = platform
        self.blob = StorageFaults("blobstore", BlobStoreUnavailable, self._clock_rng)
        self.db = StorageFaults("ccdb", DatabaseUnavailable, self._clock_rng)
        self.killed: list[str] = []
        self.corrupted: list[str] = []
        self._labels = itertools.count(1)

    def _clock_rng(self) -> tuple[Any, Any]:
        system = self.platform.system
        return system.clock, system.rng

    @property
    def system(self) -> Any:
        return self.platform.system

    def _until(self, duration: float | None) -> float | None:
        return None if duration is None else self.system.clock.monotonic() + duration

    # --- messages ----------------------------------------------------------------------

    def message_fault(
        self,
        action: str,
        *,
        sender: str = "*",
        receiver: str = "*",
        message_type: str = "*",
        probability: float = 1.0,
        delay: float = 0.0,
        duration: float | None = None,
        label: str = "",
    ) -> FaultRule:
        rule = FaultRule(
            action,
            sender=sender,
            receiver=receiver,
            message_type=message_type,
            probability=probability,
            delay=delay,
            until=self._until(duration),
            label=label,
        )
        return self.system.seam.add_fault(rule)

    def partition(self, groups: list[list[str]], *, one_way: bool = False, duration: float | None = None) -> str:
        """Cut the links between groups (names or patterns like `cell-*`).
        One-way: only messages from the first group to the others are lost."""
        if len(groups) < 2:
            raise ValueError("a partition needs at least two groups")
        label = f"partition-{next(self._labels)}"
        sets = [frozenset(g) for g in groups]
        for i, a in enumerate(sets):
            for j, b in enumerate(sets):
                if i == j or (one_way and i != 0):
                    continue
                self.message_fault("drop", sender=a, receiver=b, duration=duration, label=label)  # type: ignore[arg-type]
        log.warning("partition", groups=[sorted(g) for g in sets], one_way=one_way, label=label)
        return label

    # --- components ----------------------------------------------------------------------

    def kill(self, name: str) -> bool:
        ok = self.system.kill(name)
        if ok:
            self.killed.append(name)
        return ok

    async def cells(self) -> list[str]:
        presences = await self.system.ask("bbs", ListCells())
        return sorted(
            (p.cell_id for p in presences), key=lambda c: int(c.split("-")[-1]) if c.split("-")[-1].isdigit() else 0
        )

    async def kill_cells(self, *, fraction: float | None = None, count: int | None = None) -> list[str]:
        """Kill a seeded-random set of cells (Cloud Foundry's scale-test fault)."""
        cells = await self.cells()
        n = count if count is not None else max(1, round(len(cells) * (fraction or 0.1)))
        victims = sorted(self.system.rng.sample(cells, min(n, len(cells))))
        for cell in victims:
            self.kill(cell)
        return victims

    def pause(self, name: str) -> bool:
        return self.system.pause(name)

    def resume(self, name: str) -> bool:
        return self.system.resume(name)

    async def drain(self, cell: str) -> int:
        return await self.system.ask("bbs", EvacuateCell(cell))

    async def crash_storm(self, fraction: float) -> int:
        total = 0
        for cell in await self.cells():
            try:
                total += await self.system.ask(cell, CrashInstances(fraction))
            except Exception:  # noqa: BLE001 - an unreachable cell crashes nothing
                continue
        return total

    # --- storage -----------------------------------------------------------------------------

    def blob_fault(
        self,
        ops: str = "blob.*",
        *,
        probability: float = 1.0,
        delay: float = 0.0,
        fail: bool = True,
        duration: float | None = None,
    ) -> StorageRule:
        return self.blob.add(StorageRule(ops, probability, delay, fail, self._until(duration)))

    def db_fault(
        self,
        ops: str = "ccdb.*",
        *,
        probability: float = 1.0,
        delay: float = 0.0,
        fail: bool = True,
        duration: float | None = None,
    ) -> StorageRule:
        return self.db.add(StorageRule(ops, probability, delay, fail, self._until(duration)))

    async def corrupt_blob(self, key: str | None = None, *, kind: str | None = None) -> str | None:
        """Flip one byte of a stored blob on disk; the next verified read finds it.

        `key` names the blob; else `kind` ("package" or "droplet") picks a
        seeded choice among the blobs CC_DB uses as such; else any blob."""
        root = Path(self.platform.data_dir) / "blobstore" / "blobs"
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp"))
        if key is not None:
            files = [p for p in files if p.name == key]
        elif kind is not None:
            wanted = set(await self.system.ask("ccdb", ccdb.BlobKeysOf(kind)))
            files = [p for p in files if p.name in wanted]
        if not files:
            return None
        target = self.system.rng.choice(files)
        data = bytearray(target.read_bytes())
        if not data:
            return None
        at = self.system.rng.randrange(len(data))
        data[at] ^= 0xFF
        target.write_bytes(bytes(data))
        self.corrupted.append(target.name)
        log.warning("blob-corrupted", key=target.name, offset=at)
        return target.name

    # --- all -----------------------------------------------------------------------------------

    def heal(self) -> dict[str, int]:
        """Remove every message and storage fault; resume paused actors."""
        healed = {
            "message_rules": self.system.seam.clear_faults(),
            "blob_rules": self.blob.clear(),
            "db_rules": self.db.clear(),
            "resumed": 0,
        }
        for name in self.system.paused():
            self.system.resume(name)
            healed["resumed"] += 1
        log.info("healed", **healed)
        return healed

    def active(self) -> list[str]:
        lines = [f"#{r.rule_id} {r.describe()} (matched {r.matched})" for r in self.system.seam.faults]
        lines += [f"blob #{r.rule_id} {r.describe('blobstore')} (hits {r.hits})" for r in self.blob.rules]
        lines += [f"db #{r.rule_id} {r.describe('ccdb')} (hits {r.hits})" for r in self.db.rules]
        lines += [f"paused {name}" for name in self.system.paused()]
        return lines


# --- the REPL's fault commands -----------------------------------------------------------------

FAULT_COMMANDS: dict[str, tuple[str, str]] = {
    "faults": ("faults", "List the active faults"),
    "kill-cell": ("kill-cell CELL... | kill-cell --fraction F", "Crash cells (their instances are gone)"),
    "kill": ("kill ACTOR", "Crash any actor (its supervisor restarts it)"),
    "pause": ("pause ACTOR", "Stop delivering to an actor (messages queue up)"),
    "resume": ("resume ACTOR", "Deliver again to a paused actor"),
    "drain": ("drain CELL", "Evacuate a cell: replacements first, then stop"),
    "partition": ("partition A,B.. C,D.. [--one-way] [--for S]", "Cut links between groups of actors"),
    "drop": ("drop [--from S] [--to R] [--type T] [-p P] [--for S]", "Drop matching messages"),
    "delay": ("delay SECONDS [--from S] [--to R] [--type T] [-p P] [--for S]", "Delay matching messages"),
    "duplicate": ("duplicate [--from S] [--to R] [--type T] [-p P] [--for S]", "Deliver matching messages twice"),
    "reorder": ("reorder WINDOW [--from S] [--to R] [--type T] [-p P] [--for S]", "Let later messages overtake"),
    "blob-fail": ("blob-fail [OPS] [-p P] [--for S]", "Fail blob store operations (blob.put, blob.get, ...)"),
    "blob-slow": ("blob-slow SECONDS [OPS] [--for S]", "Slow blob store operations"),
    "db-fail": ("db-fail [OPS] [-p P] [--for S]", "Fail CC_DB operations (ccdb.read, ccdb.write)"),
    "db-slow": ("db-slow SECONDS [OPS] [--for S]", "Slow CC_DB operations"),
    "corrupt-blob": ("corrupt-blob [KEY | package | droplet]", "Flip a byte of a stored blob (found on the next read)"),
    "crash-storm": ("crash-storm FRACTION", "Crash that share of all running instances"),
    "heal": ("heal", "Remove every fault and resume paused actors"),
}


def _options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    it = iter(argv)
    for word in it:
        if word in ("--one-way",):
            options[word[2:]] = "1"
        elif word.startswith("-"):
            key = {
                "-p": "p",
                "--from": "from",
                "--to": "to",
                "--type": "type",
                "--for": "for",
                "--fraction": "fraction",
            }.get(word)
            if key is None:
                raise ValueError(f"unknown option {word}")
            try:
                options[key] = next(it)
            except StopIteration:
                raise ValueError(f"{word} needs a value") from None
        else:
            positional.append(word)
    return positional, options


class _MessageMatch(TypedDict):
    """Which messages a `drop`/`delay`/... command matches (`message_fault`'s patterns)."""

    sender: str
    receiver: str
    message_type: str


async def run_fault_command(faults: Faults, argv: list[str], out: Callable[[str], None]) -> int:
    """Run one fault command from the REPL; returns an exit code."""
    if not argv or argv[0] not in FAULT_COMMANDS:
        out(f"'{argv[0] if argv else ''}' is not a fault command")
        return 1
    name = argv[0]
    try:
        args, opts = _options(argv[1:])
        p = float(opts.get("p", 1.0))
        duration = float(opts["for"]) if "for" in opts else None
        match: _MessageMatch = {
            "sender": opts.get("from", "*"),
            "receiver": opts.get("to", "*"),
            "message_type": opts.get("type", "*"),
        }
        if name == "faults":
            lines = faults.active()
            for line in lines or ["no active faults"]:
                out(line)
        elif name == "kill-cell":
            if "fraction" in opts:
                victims = await faults.kill_cells(fraction=float(opts["fraction"]))
            else:
                if not args:
                    raise ValueError("name the cells, or give --fraction")
                victims = [c for c in args if faults.kill(c)]
            out(f"killed {', '.join(victims) or 'nothing'}")
        elif name in ("kill", "pause", "resume"):
            if len(args) != 1:
                raise ValueError(f"usage: {FAULT_COMMANDS[name][0]}")
            ok = getattr(faults, name)(args[0])
            out(f"{name} {args[0]}: {'OK' if ok else 'no such actor'}")
            return 0 if ok else 1
        elif name == "drain":
            if len(args) != 1:
                raise ValueError("usage: drain CELL")
            moved = await faults.drain(args[0])
            out(f"draining {args[0]}: {moved} instances being replaced")
        elif name == "partition":
            groups = [[n for n in g.split(",") if n] for g in args]
            label = faults.partition(groups, one_way="one-way" in opts, duration=duration)
            out(f"{label}: {' | '.join(','.join(g) for g in groups)}{' (one way)' if 'one-way' in opts else ''}")
        elif name in ("drop", "duplicate"):
            rule = faults.message_fault(name, probability=p, duration=duration, **match)
            out(f"#{rule.rule_id} {rule.describe()}")
        elif name in ("delay", "reorder"):
            if len(args) != 1:
                raise ValueError(f"usage: {FAULT_COMMANDS[name][0]}")
            rule = faults.message_fault(name, probability=p, delay=float(args[0]), duration=duration, **match)
            out(f"#{rule.rule_id} {rule.describe()}")
        elif name in ("blob-fail", "db-fail"):
            ops = args[0] if args else ("blob.*" if name == "blob-fail" else "ccdb.*")
            add = faults.blob_fault if name == "blob-fail" else faults.db_fault
            storage_rule = add(ops, probability=p, duration=duration)
            out(storage_rule.describe("blobstore" if name == "blob-fail" else "ccdb"))
        elif name in ("blob-slow", "db-slow"):
            if not args:
                raise ValueError(f"usage: {FAULT_COMMANDS[name][0]}")
            ops = args[1] if len(args) > 1 else ("blob.*" if name == "blob-slow" else "ccdb.*")
            add = faults.blob_fault if name == "blob-slow" else faults.db_fault
            storage_rule = add(ops, delay=float(args[0]), fail=False, duration=duration)
            out(storage_rule.describe("blobstore" if name == "blob-slow" else "ccdb"))
        elif name == "corrupt-blob":
            what = args[0] if args else None
            if what in ("package", "droplet"):
                key = await faults.corrupt_blob(kind=what)
            else:
                key = await faults.corrupt_blob(what)
            out(f"corrupted {key}" if key else "no such blob")
            return 0 if key else 1
        elif name == "crash-storm":
            if len(args) != 1:
                raise ValueError("usage: crash-storm FRACTION")
            out(f"crashed {await faults.crash_storm(float(args[0]))} instances")
        elif name == "heal":
            healed = faults.heal()
            out("healed: " + ", ".join(f"{k} {v}" for k, v in healed.items()))
    except ValueError as exc:
        out(f"Incorrect Usage: {exc}")
        out("FAILED")
        return 1
    return 0
