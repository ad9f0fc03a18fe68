"""The `cli` actor: the user's side of every command, as the cf CLI does it.

It parses a command, talks to Cloud Controller step by step (create the app,
match resources, upload only the unknown files, stage while tracing the
staging logs, start, poll the instances) and prints what cf prints, as
`Output` lines to the command's terminal. Each command runs beside the
mailbox, so several users' pushes proceed at once and a long push never
blocks `apps`. Its parts: `base` (running a command), `push`, `lifecycle`
(scale, start, stop, restart, restage, delete), `views` (apps, app, logs,
events, cells, trace, help).
"""

from __future__ import annotations

from actors.cli.base import CliConfig
from actors.cli.views import Views

__all__ = ["CliActor", "CliConfig"]


class CliActor(Views):
    """The cf CLI."""
