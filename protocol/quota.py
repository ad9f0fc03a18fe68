"""Cloud Controller's quota definitions: what an org may use.

Every org has one (`default` unless set). `-1` means unlimited, as in Cloud
Controller. The memory limit counts the memory of every instance of every
started app; a push, scale or start that would go over it is refused before
anything is desired (`AppMemoryQuotaExceeded`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import AppMemoryQuotaExceeded, QuotaInstanceLimitExceeded, QuotaInstanceMemoryLimitExceeded

__all__ = ["UNLIMITED", "QuotaDefinition"]

UNLIMITED = -1


@dataclass(frozen=True, slots=True)
class QuotaDefinition:
    """An org quota (the fields Cloud Controller's quota definitions share)."""

    name: str = "default"
    memory_limit_mb: int = 10240  # Cloud Controller's default quota
    instance_memory_limit_mb: int = UNLIMITED
    app_instance_limit: int = UNLIMITED
    total_routes: int = 1000
    total_services: int = 100

    def check(self, *, memory_mb: int, instances: int, used_memory_mb: int, used_instances: int) -> None:
        """Refuse an app of `instances` x `memory_mb` beside what the org's
        other started apps use (`used_*`)."""
        if self.instance_memory_limit_mb != UNLIMITED and memory_mb > self.instance_memory_limit_mb:
            raise QuotaInstanceMemoryLimitExceeded()
        if self.app_instance_limit != UNLIMITED and used_instances + instances > self.app_instance_limit:
            raise QuotaInstanceLimitExceeded()
        if self.memory_limit_mb != UNLIMITED and used_memory_mb + memory_mb * instances > self.memory_limit_mb:
            raise AppMemoryQuotaExceeded()
