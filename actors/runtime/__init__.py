"""The runtime every component stands on: pykka's actor API on one asyncio loop.

Public names are re-exported here; see each module for what it owns.
"""

from actors.runtime.actor import AsyncActorRef, AsyncioActor, Deferred, handles
from actors.runtime.clock import Clock, RealClock, VirtualClock
from actors.runtime.delivery import EXTERNAL, DeadLetter, DeliverySeam, Envelope, FaultRule, current_trace
from actors.runtime.errors import ActorDeadError, AskTimeout, GetOnLoopThread, RuntimeNotRunning
from actors.runtime.future import AsyncioFuture
from actors.runtime.supervisor import ChildCrashed, ChildSpec, Supervisor, SupervisorEscalation
from actors.runtime.system import ActorNameTaken, ActorSystem, current_system

__all__ = [
    "EXTERNAL",
    "ActorDeadError",
    "ActorNameTaken",
    "ActorSystem",
    "AskTimeout",
    "AsyncActorRef",
    "AsyncioActor",
    "AsyncioFuture",
    "ChildCrashed",
    "ChildSpec",
    "Clock",
    "DeadLetter",
    "Deferred",
    "DeliverySeam",
    "Envelope",
    "FaultRule",
    "GetOnLoopThread",
    "RealClock",
    "RuntimeNotRunning",
    "Supervisor",
    "SupervisorEscalation",
    "VirtualClock",
    "current_system",
    "current_trace",
    "handles",
]
