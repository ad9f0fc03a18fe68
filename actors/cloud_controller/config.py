"""Cloud Controller's settings."""

from __future__ import annotations

import dataclasses

from protocol.quota import QuotaDefinition

__all__ = ["ControllerConfig"]


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerConfig:
    staging_timeout: float = 900.0  # CC's staging_timeout_in_seconds (15 min)
    staging_memory_mb: int = 1024
    staging_disk_mb: int = 4096
    # CC's maximum_app_disk_in_mb: no app's instances may ask for more disk.
    max_app_disk_mb: int = 2048
    db_timeout: float = 10.0
    blob_timeout: float = 60.0
    packages_kept: int = 5
    droplets_kept: int = 5
    reap_interval: float = 300.0  # orphan blob sweep, platform seconds
    db_read_attempts: int = 3
    # Cloud Controller's pending-packages / pending-builds cleanup jobs: an
    # upload or a build whose request was lost is failed after this long.
    max_pending_package_age: float = 600.0
    # The clock job's Diego sync (ProcessesSync, TasksSync): CC_DB is the
    # truth, the BBS is made to agree with it this often (and at once when
    # the BBS restarts). Switched off only to prove that checks catch drift.
    sync_interval: float = 30.0
    sync_enabled: bool = True
    desire_task_attempts: int = 3
    # The org's quota (the platform sizes its default to the cells) and the
    # stacks the cells provide.
    quota: QuotaDefinition = QuotaDefinition()
    stacks: tuple[str, ...] = ("cflinuxfs4", "cflinuxfs3")

    @property
    def cleanup_bound(self) -> float:
        """Platform seconds after which the cleanup jobs have failed anything
        a lost message left pending (an experiment judges leftovers after it)."""
        return max(self.max_pending_package_age, self.staging_timeout) + 2 * self.reap_interval
