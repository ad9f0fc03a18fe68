"""Supervision as in Erlang/OTP: a supervisor restarts its crashed children.

Strategies: `one_for_one` (restart only the child that crashed) and
`one_for_all` (stop the others and restart every child, in order). Restart
intensity: more than `max_restarts` restarts within `within` seconds of
platform time and the supervisor gives up: it stops its children and crashes
itself with `SupervisorEscalation`, which its own parent handles in turn (by
restarting the whole subtree). A supervisor with `max_restarts=None` never
gives up; `restart_backoff` spaces its restarts out (doubling while crashes
keep coming, at most `max_backoff`), as the root of a tree that must never
leave the platform dead does.

Children are started by name, so a restarted child takes the same stable
name and everyone addressing it by name reaches the new one.

Only crashes are restarted: a child stopped on purpose stays stopped. A
supervisor that crashes or is killed under a supervisor takes its children
with it (OTP's links), so the supervisor above it restarts the whole
subtree; the root leaves them running. Nothing restarts once the system
has begun to stop.
`temporary` children are never restarted.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Literal

import structlog
from pykka import ActorDeadError

from actors.runtime.actor import AsyncActorRef, AsyncioActor, handles

__all__ = ["ChildCrashed", "ChildSpec", "HoldChild", "ReleaseHolds", "Supervisor", "SupervisorEscalation"]

log = structlog.get_logger("minifoundry.supervisor")

Restart = Literal["permanent", "temporary"]


@dataclasses.dataclass(frozen=True, slots=True)
class ChildCrashed:
    """Runtime -> supervisor: a child stopped because of an exception."""

    name: str
    urn: str
    reason: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class HoldChild:
    """Keep the child `name` down for `seconds` after its next crash (a
    fault's down time): its restart waits at least that long."""

    name: str
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseHolds:
    """Restart now every child that is down waiting for its restart (a
    `HoldChild`, a backoff): what healing the platform does. The reply is
    the names restarted."""


@dataclasses.dataclass(frozen=True, slots=True)
class _RestartChild:
    """Timer: restart a crashed child after its backoff."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to (re)start one child: `start(name)` must start it under `name`."""

    name: str
    start: Callable[[str], AsyncActorRef]
    restart: Restart = "permanent"


class SupervisorEscalation(Exception):
    """A supervisor's restart intensity was exceeded; its parent must act."""

    _escalation = True


class Supervisor(AsyncioActor):
    """Starts children, restarts the crashed ones per strategy."""

    default_name = "supervisor"

    def __init__(
        self,
        children: list[ChildSpec] | None = None,
        *,
        strategy: Literal["one_for_one", "one_for_all"] = "one_for_one",
        max_restarts: int | None = 3,
        within: float = 5.0,
        restart_backoff: float = 0.0,
        max_backoff: float = 30.0,
        links: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if strategy not in ("one_for_one", "one_for_all"):
            raise ValueError(f"unknown strategy {strategy!r}")
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within = within
        self.restart_backoff = restart_backoff
        self.max_backoff = max_backoff
        # False: a crashed supervisor leaves its children running (the links
        # switched off, for an experiment to show what they are for).
        self.links = links
        self._specs: dict[str, ChildSpec] = {}
        self._children: dict[str, AsyncActorRef] = {}
        self._restarts: deque[float] = deque()
        self.restart_count = 0
        self._held: dict[str, float] = {}  # child -> down time to keep after its next crash
        for spec in children or ():
            self._specs[spec.name] = spec

    def on_start(self) -> None:
        for spec in list(self._specs.values()):
            self._start_child(spec)

    def _start_child(self, spec: ChildSpec) -> AsyncActorRef:
        ref = spec.start(spec.name)
        self._children[spec.name] = ref
        log.debug("child-started", supervisor=self.actor_name, child=spec.name)
        return ref

    # --- public API (through proxy or ask) ---------------------------------------

    def add_child(self, spec: ChildSpec) -> AsyncActorRef:
        """Start one more child under this supervisor."""
        if spec.name in self._specs and self._alive(spec.name):
            raise ValueError(f"child {spec.name!r} already running")
        self._specs[spec.name] = spec
        return self._start_child(spec)

    async def remove_child(self, name: str) -> bool:
        """Stop a child and forget it (it will not be restarted)."""
        self._specs.pop(name, None)
        ref = self._children.pop(name, None)
        if ref is None:
            return False
        if ref.is_alive():
            try:
                await ref.stop(block=False)
            except ActorDeadError:
                pass
        return True

    def children(self) -> list[str]:
        return list(self._children)

    def _alive(self, name: str) -> bool:
        ref = self._children.get(name)
        return ref is not None and ref.is_alive()

    # --- crashes -------------------------------------------------------------------

    @handles(HoldChild)
    def _hold_child(self, message: HoldChild) -> None:
        self._held[message.name] = max(0.0, message.seconds)

    @handles(ReleaseHolds)
    def _release_holds(self, _message: ReleaseHolds) -> list[str]:
        self._held.clear()
        restarted = []
        for name, spec in list(self._specs.items()):
            if name in self._children and not self._alive(name) and not self._system.stopping:
                self._start_child(spec)
                restarted.append(name)
        return restarted

    @handles(_RestartChild)
    def _restart_child(self, message: _RestartChild) -> None:
        if self._system.stopping:
            return  # a restart delayed into the shutdown: nothing restarts now
        spec = self._specs.get(message.name)
        if spec is not None and not self._alive(message.name):
            self._start_child(spec)

    @handles(ChildCrashed)
    async def _on_child_crashed(self, crashed: ChildCrashed) -> None:
        ref = self._children.get(crashed.name)
        spec = self._specs.get(crashed.name)
        if ref is None or ref.actor_urn != crashed.urn or spec is None:
            return  # an old incarnation, or a child we were told to forget
        if spec.restart == "temporary":
            self._children.pop(crashed.name, None)
            self._specs.pop(crashed.name, None)
            return
        now = self.clock.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - self.within:
            self._restarts.popleft()
        if self.max_restarts is not None and len(self._restarts) > self.max_restarts:
            log.error(
                "supervisor-giving-up",
                supervisor=self.actor_name,
                child=crashed.name,
                restarts=len(self._restarts),
                within=self.within,
            )
            await self._stop_all_children()
            raise SupervisorEscalation(
                f"{self.actor_name}: {crashed.name} crashed more than {self.max_restarts} times "
                f"in {self.within:g} s (last: {crashed.reason!r})"
            )
        self.restart_count += 1
        log.info(
            "child-restarting",
            supervisor=self.actor_name,
            child=crashed.name,
            reason=repr(crashed.reason),
            strategy=self.strategy,
        )
        if self.strategy == "one_for_one":
            delay = 0.0
            if self.restart_backoff > 0:
                delay = min(self.max_backoff, self.restart_backoff * 2 ** (len(self._restarts) - 1))
            delay = max(delay, self._held.pop(crashed.name, 0.0))
            if delay > 0:
                log.warning("child-restart-delayed", supervisor=self.actor_name, child=crashed.name, delay=delay)
                self.tell_self_later(delay, _RestartChild(crashed.name))
            else:
                self._start_child(spec)
        else:
            await self._stop_all_children(except_name=crashed.name)
            for other in list(self._specs.values()):
                self._start_child(other)

    async def _stop_all_children(self, except_name: str | None = None) -> None:
        """Stop children newest first and wait for each, so a restart can
        take the same names."""
        for name, ref in reversed(list(self._children.items())):
            if name != except_name and ref.is_alive():
                try:
                    await ref.stop(block=False)
                except ActorDeadError:
                    pass

    async def on_stop(self) -> None:  # type: ignore[override]  # pykka types hooks -> None
        await self._stop_all_children()

    def on_failure(self, *_exc_info: object) -> None:
        """A supervisor that crashes (or is killed) under a supervisor takes
        its children with it, as OTP's links do, newest first and at once:
        the supervisor above restarts the subtree, and the children's names
        are free for that before it hears of the crash. (A supervisor giving
        up has stopped them already. The root, whom nobody restarts, leaves
        its children running.)"""
        # Under a supervisor, alive or itself going down with its subtree
        # (which its own supervisor then restarts).
        if self.links and isinstance(self._actor_parent, Supervisor):
            self._kill_children_now()

    def _kill_children_now(self) -> None:
        for ref in reversed(list(self._children.values())):
            child = ref._actor
            if ref.is_alive():
                child._actor_kill_now()
            elif isinstance(child, Supervisor):
                # Stopping (one_for_all, or its parent's restart): what it
                # has not stopped yet goes now, so no name stays taken.
                child._kill_children_now()
