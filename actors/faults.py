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
from actors.runtime.supervisor import HoldChild, ReleaseHolds, Supervisor
from protocol import ccdb
from protocol.errors import BlobStoreUnavailable, DatabaseUnavailable
from protocol.messages import CellInfo, CrashInstances, EvacuateCell, ListCells

__all__ = ["FAULT_COMMANDS", "FaultError", "Faults", "StorageFaults", "StorageRule", "run_fault_command"]

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
        # Actors killed to stay down a while: name -> platform time they may come back.
        self.down: dict[str, float] = {}
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

    def kill(self, name: str, *, down: float | None = None) -> bool:
        """Crash an actor; with `down`, its supervisor restarts it only that
        many platform seconds later (a machine that stays off a while)."""
        actor = self.system.actor(name)
        if down is not None and actor is not None and actor._actor_parent is not None:
            actor._actor_parent.actor_ref.tell(HoldChild(name, down))
        ok = self.system.kill(name)
        if ok:
            self.killed.append(name)
            if down is not None and down > 0:
                self.down[name] = self.system.clock.monotonic() + down
        return ok

    async def cells(self) -> list[str]:
        presences = await self.system.ask("bbs", ListCells())
        return sorted(
            (p.cell_id for p in presences), key=lambda c: int(c.split("-")[-1]) if c.split("-")[-1].isdigit() else 0
        )

    async def kill_cells(
        self, *, fraction: float | None = None, count: int | None = None, down: float | None = None
    ) -> list[str]:
        """Kill a seeded-random set of cells (Cloud Foundry's scale-test fault)."""
        cells = await self.cells()
        n = count if count is not None else max(1, round(len(cells) * (0.1 if fraction is None else fraction)))
        victims = sorted(self.system.rng.sample(cells, min(n, len(cells))))
        for cell in victims:
            self.kill(cell, down=down)
        return victims

    def pause(self, name: str) -> bool:
        return self.system.pause(name)

    def resume(self, name: str) -> bool:
        return self.system.resume(name)

    async def drain(self, cell: str) -> int:
        return await self.system.ask("bbs", EvacuateCell(cell))

    async def crash_storm(self, fraction: float) -> int:
        """Crash `fraction` of all running instances, platform-wide: the
        victims are a seeded choice among every cell's running instances, so
        a share of cells with one instance each still loses that share."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"the fraction must be from 0 to 1, got {fraction:g}")
        running: list[str] = []
        for cell in await self.cells():
            try:
                info = await self.system.ask(cell, CellInfo())
            except Exception:  # noqa: BLE001 - an unreachable cell has nothing to crash
                continue
            running += [cell] * info.running
        chosen = self.system.rng.sample(running, round(len(running) * fraction)) if running else []
        total = 0
        for cell in sorted(set(chosen)):
            try:
                total += await self.system.ask(cell, CrashInstances(fraction, count=chosen.count(cell)))
            except Exception:  # noqa: BLE001 - a cell that went away crashes nothing
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
        """Remove every message and storage fault; resume paused actors;
        bring back at once the actors killed to stay down (`--for`)."""
        healed = {
            "message_rules": self.system.seam.clear_faults(),
            "blob_rules": self.blob.clear(),
            "db_rules": self.db.clear(),
            "resumed": 0,
            "restarted": 0,
        }
        for name in self.system.paused():
            self.system.resume(name)
            healed["resumed"] += 1
        if self.down:
            held = [n for n in self.down if self.system.lookup(n) is None]
            self.down.clear()
            for name in self.system.names():
                actor = self.system.actor(name)
                if isinstance(actor, Supervisor):
                    actor.actor_ref.tell(ReleaseHolds())
            healed["restarted"] = len(held)
        log.info("healed", **healed)
        return healed

    def active(self) -> list[str]:
        lines = [f"#{r.rule_id} {r.describe()} (matched {r.matched})" for r in self.system.seam.faults]
        lines += [f"blob #{r.rule_id} {r.describe('blobstore')} (hits {r.hits})" for r in self.blob.rules]
        lines += [f"db #{r.rule_id} {r.describe('ccdb')} (hits {r.hits})" for r in self.db.rules]
        lines += [f"paused {name}" for name in self.system.paused()]
        now = self.system.clock.monotonic()
        for name, until in sorted(self.down.items()):
            if until > now and self.system.lookup(name) is None:
                lines.append(f"down {name} for {until - now:.0f} s more (killed)")
        return lines


# --- the REPL's fault commands -----------------------------------------------------------------

FAULT_COMMANDS: dict[str, tuple[str, str]] = {
    "faults": ("faults", "List the active faults"),
    "kill-cell": (
        "kill-cell CELL... | kill-cell --fraction F [--for S]",
        "Crash cells (their instances are gone); --for keeps them down S seconds",
    ),
    "kill": ("kill ACTOR [--for S]", "Crash any actor (its supervisor restarts it, S seconds later with --for)"),
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


class FaultError(ValueError):
    """A fault command that names nothing, or a value it cannot take: said
    in one line, then FAILED (exit 1), and nothing is injected."""


#: The longest a fault may last or hold a message (a platform day), as an
#: experiment file's numbers (`actors.experiments.schema.MAX_SECONDS`).
MAX_SECONDS = 86_400.0

#: The storage operations a fault may name (patterns must match one).
BLOB_OPS = ("blob.put", "blob.get", "blob.head", "blob.delete", "blob.list")
DB_OPS = ("ccdb.read", "ccdb.write")


def message_types() -> frozenset[str]:
    """The names of every message type the platform's actors send each
    other (what a message fault's type pattern must match one of)."""
    from protocol import blobs, ccdb, messages

    return frozenset(
        name
        for module in (messages, ccdb, blobs)
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__ and dataclasses.is_dataclass(value)
    )


def _number(text: str, what: str, *, low: float | None = None, high: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultError(f"{what} must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FaultError(f"{what} must be a finite number, got {text!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
        raise FaultError(f"{what} must be {bounds}, got {text}")
    return value


def _ops(pattern: str, known: tuple[str, ...], store: str) -> str:
    if not any(fnmatch.fnmatchcase(op, pattern) for op in known):
        raise FaultError(f"{pattern!r} matches no {store} operation ({', '.join(known)})")
    return pattern


async def _targets(faults: Faults, names: list[str]) -> list[str]:
    """The actors `names` mean, each checked: a name or pattern must match a
    running actor, `zone:zN` is that zone's cells (from their heartbeats)."""
    running = sorted(faults.system.names())
    out: list[str] = []
    presences: list[Any] | None = None
    for name in names:
        if name.startswith("zone:"):
            if presences is None:
                presences = list(await faults.system.ask("bbs", ListCells()))
            cells = sorted(p.cell_id for p in presences if p.zone == name[5:])
            if not cells:
                zones = sorted({p.zone for p in presences})
                raise FaultError(f"{name!r}: no cell is in zone {name[5:]!r} (zones: {', '.join(zones)})")
            out += cells
        elif name == "*" or fnmatch.filter(running, name):
            out.append(name)
        else:
            raise FaultError(f"{name!r} names no actor of this platform (see status)")
    return out


async def _match_part(faults: Faults, pattern: str) -> Any:
    """A --from/--to: `*`, a checked name or pattern, or a zone's cells."""
    if pattern == "*":
        return pattern
    named = await _targets(faults, [pattern])
    return frozenset(named) if pattern.startswith("zone:") else pattern


def _options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    it = iter(argv)
    for word in it:
        if word in ("--one-way",):
            options[word[2:]] = "1"
        elif word.startswith("-") and not _is_number(word):
            key = {
                "-p": "p",
                "--from": "from",
                "--to": "to",
                "--type": "type",
                "--for": "for",
                "--fraction": "fraction",
            }.get(word)
            if key is None:
                raise FaultError(f"unknown option {word}")
            try:
                options[key] = next(it)
            except StopIteration:
                raise FaultError(f"{word} needs a value") from None
        else:
            positional.append(word)
    return positional, options


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


class _MessageMatch(TypedDict):
    """Which messages a `drop`/`delay`/... command matches (`message_fault`'s patterns)."""

    sender: str
    receiver: str
    message_type: str


async def run_fault_command(faults: Faults, argv: list[str], out: Callable[[str], None]) -> int:
    """Run one fault command from the REPL; returns an exit code. What it
    names must exist (a cell, an actor, a storage operation) and its numbers
    must make sense; otherwise it says why, then FAILED, exit 1."""
    if not argv or argv[0] not in FAULT_COMMANDS:
        out(f"'{argv[0] if argv else ''}' is not a fault command")
        out("FAILED")
        return 1
    name = argv[0]
    try:
        args, opts = _options(argv[1:])
        p = _number(opts["p"], "-p", low=0, high=1) if "p" in opts else 1.0
        duration = _number(opts["for"], "--for", low=0, high=MAX_SECONDS) if "for" in opts else None
        kind = opts.get("type", "*")
        if kind != "*" and not fnmatch.filter(sorted(message_types()), kind):
            raise FaultError(f"--type {kind!r} matches no message type of the platform (such as Perform or DesireLRP)")
        match: _MessageMatch = {
            "sender": await _match_part(faults, opts.get("from", "*")),
            "receiver": await _match_part(faults, opts.get("to", "*")),
            "message_type": kind,
        }
        if name == "faults":
            lines = faults.active()
            for line in lines or ["no active faults"]:
                out(line)
        elif name == "kill-cell":
            cells = await faults.cells()
            if "fraction" in opts:
                if args:
                    raise FaultError("name the cells or give --fraction, not both")
                fraction = _number(opts["fraction"], "--fraction", low=0, high=1)
                victims = await faults.kill_cells(fraction=fraction, down=duration)
            else:
                if not args:
                    raise FaultError("name the cells, or give --fraction")
                unknown = [c for c in args if c not in cells]
                if unknown:
                    raise FaultError(f"{unknown[0]} is not a cell of this platform (its cells: {', '.join(cells)})")
                victims = [c for c in dict.fromkeys(args) if faults.kill(c, down=duration)]
            down = f", down for {duration:g} s" if duration is not None else ""
            out(f"killed {', '.join(victims) or 'nothing'}{down}")
        elif name in ("kill", "pause", "resume"):
            if len(args) != 1:
                raise FaultError(f"usage: {FAULT_COMMANDS[name][0]}")
            if faults.system.lookup(args[0]) is None:
                raise FaultError(f"no actor is named {args[0]!r}")
            if name == "resume" and args[0] not in faults.system.paused():
                raise FaultError(f"resume {args[0]}: it is not paused")
            ok = faults.kill(args[0], down=duration) if name == "kill" else getattr(faults, name)(args[0])
            if not ok:
                raise FaultError(f"{name} {args[0]}: it is not running")
            out(f"{name} {args[0]}: OK")
        elif name == "drain":
            if len(args) != 1:
                raise FaultError("usage: drain CELL")
            cells = await faults.cells()
            if args[0] not in cells:
                raise FaultError(f"{args[0]} is not a cell of this platform (its cells: {', '.join(cells)})")
            moved = await faults.drain(args[0])
            out(f"draining {args[0]}: {moved} instances being replaced")
        elif name == "partition":
            groups = [await _targets(faults, [n for n in g.split(",") if n]) for g in args]
            members = [n for g in groups for n in g]
            if len(members) != len(set(members)):
                raise FaultError("the groups of a partition must not share a member")
            label = faults.partition(groups, one_way="one-way" in opts, duration=duration)
            out(f"{label}: {' | '.join(','.join(g) for g in groups)}{' (one way)' if 'one-way' in opts else ''}")
        elif name in ("drop", "duplicate"):
            rule = faults.message_fault(name, probability=p, duration=duration, **match)
            out(f"#{rule.rule_id} {rule.describe()}")
        elif name in ("delay", "reorder"):
            if len(args) != 1:
                raise FaultError(f"usage: {FAULT_COMMANDS[name][0]}")
            seconds = _number(args[0], "the seconds", low=0, high=MAX_SECONDS)
            if name == "reorder" and seconds <= 0:
                raise FaultError("reorder needs a window above 0 seconds to reorder messages within")
            rule = faults.message_fault(name, probability=p, delay=seconds, duration=duration, **match)
            out(f"#{rule.rule_id} {rule.describe()}")
        elif name in ("blob-fail", "db-fail"):
            blob = name == "blob-fail"
            ops = _ops(
                args[0] if args else ("blob.*" if blob else "ccdb.*"),
                BLOB_OPS if blob else DB_OPS,
                "blob store" if blob else "CC_DB",
            )
            add = faults.blob_fault if blob else faults.db_fault
            storage_rule = add(ops, probability=p, duration=duration)
            out(storage_rule.describe("blobstore" if blob else "ccdb"))
        elif name in ("blob-slow", "db-slow"):
            if not args:
                raise FaultError(f"usage: {FAULT_COMMANDS[name][0]}")
            blob = name == "blob-slow"
            seconds = _number(args[0], "the seconds", low=0, high=MAX_SECONDS)
            ops = _ops(
                args[1] if len(args) > 1 else ("blob.*" if blob else "ccdb.*"),
                BLOB_OPS if blob else DB_OPS,
                "blob store" if blob else "CC_DB",
            )
            add = faults.blob_fault if blob else faults.db_fault
            storage_rule = add(ops, delay=seconds, fail=False, duration=duration)
            out(storage_rule.describe("blobstore" if blob else "ccdb"))
        elif name == "corrupt-blob":
            what = args[0] if args else None
            if what in ("package", "droplet"):
                key = await faults.corrupt_blob(kind=what)
            else:
                key = await faults.corrupt_blob(what)
            if not key:
                raise FaultError(f"no stored blob is {what}" if what else "the blob store holds no blob yet")
            out(f"corrupted {key}")
        elif name == "crash-storm":
            if len(args) != 1:
                raise FaultError("usage: crash-storm FRACTION")
            fraction = _number(args[0], "the fraction", low=0, high=1)
            out(f"crashed {await faults.crash_storm(fraction)} instances")
        elif name == "heal":
            healed = faults.heal()
            out("healed: " + ", ".join(f"{k} {v}" for k, v in healed.items()))
    except ValueError as exc:
        text = str(exc)
        out(text if isinstance(exc, FaultError) else f"Incorrect Usage: {text}")
        out("FAILED")
        return 1
    return 0
