"""The `cloud_controller` component: Cloud Controller (CAPI), the platform's API.

It owns the user-facing objects (apps, packages, builds, droplets, the web
process), keeps them in CC_DB, moves bits through the blob store, and turns
user intent into Diego work: a build becomes a staging task, a started app a
desired LRP. It hears back from the BBS when staging completes and when an
instance crashes, and keeps the BBS in agreement with CC_DB (the sync).

Its parts, one concept each: `apps` (create, update, find, quotas), `bits`
(uploads, blobs, cleanup jobs), `staging`, `processes` (start, stop, scale,
delete, the sync), `views` (instances, summary, events, traces).
"""

from actors.cloud_controller.actor import CloudController
from actors.cloud_controller.config import ControllerConfig
from actors.cloud_controller.processes import desired_lrp

__all__ = ["CloudController", "ControllerConfig", "desired_lrp"]
