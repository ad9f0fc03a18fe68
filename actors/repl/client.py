"""One cf command on the platform that serves the data dir: `python run.py apps`.

The command runs in the serving process (started in the background first,
when none serves the data dir yet); this process only carries it there over
the attach socket and prints what comes back, so it imports next to nothing:
a blocking socket and `json`.

    client -> server   {"hello": {...}, "run": ["apps"], "cwd": "...", "interactive": false}
                       {"answer": true}      the user's y/N to a confirmation
                       {"cancel": true}      Ctrl-C: the command is cancelled in the platform
    server -> client   {"out": "..."} / {"err": "..."}   a line of standard output / error
                       {"confirm": "Really delete the app hello?"}
                       {"exit": 0}           the command's exit code (130 after a cancel)

Ctrl-C exits 130 at once. Output lines are printed as they arrive; when
standard output's reader goes away (`| head`), the rest is dropped quietly.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

from actors.repl import daemon
from actors.stdout import write_line

__all__ = ["run_one"]


def run_one(args: Any) -> int:
    """Run `args.command` on the platform serving `args.data_dir`; its exit code."""
    data_dir = args.data_dir
    try:
        sock = daemon.connect(data_dir)
    except PermissionError:
        print(f"Not allowed to use {daemon.socket_path(data_dir)}: it belongs to another user.", file=sys.stderr)
        return 1
    if sock is None:
        refused = _refused_here(args)
        if refused is not None:
            return refused  # no platform started for a command line cf refuses anyway
        try:
            info, started = daemon.start_in_background(args, implicit=True)
        except daemon.StartFailed as exc:
            for line in exc.lines:
                print(line, file=sys.stderr)
            return 1
        if started:
            print(
                f"Started minifoundry in the background for {data_dir} "
                f"(pid {info.get('pid')}, API {info.get('api_url') or 'none'}); "
                f"stop it with: {daemon.stop_hint(data_dir)}",
                file=sys.stderr,
                flush=True,
            )
        sock = daemon.connect(data_dir)
        if sock is None:
            print(f"The minifoundry process serving {data_dir} went away before the command ran.", file=sys.stderr)
            return 1
    with sock:
        return _converse(sock, args)


#: The REPL's own commands and the fault commands (`actors.repl.session`,
#: `actors.faults`), which a one-shot command may name too: only the platform
#: knows their arguments. (A test holds this list to theirs.)
PLATFORM_ONLY_COMMANDS = frozenset(
    {"exit", "py", "quit", "send", "status", "faults", "heal", "kill", "kill-cell", "pause", "resume", "drain"}
    | {"partition", "drop", "duplicate", "delay", "reorder", "crash-storm", "corrupt-blob"}
    | {"blob-fail", "blob-slow", "db-fail", "db-slow"}
)


def _refused_here(args: Any) -> int | None:
    """A command line cf refuses before it runs anything (an unknown command,
    an unknown flag, a missing path) is refused here, in the platform's words,
    without starting a platform for it; None when it needs the platform."""
    from actors.cli.commands import ALIASES, parse, refusal_lines
    from protocol.errors import IncorrectUsage, UnknownCommand

    argv = list(args.command)
    if argv and ALIASES.get(argv[0], argv[0]) in PLATFORM_ONLY_COMMANDS:
        return None
    try:
        parse(argv, os.getcwd())
    except (IncorrectUsage, UnknownCommand) as exc:
        for stream, line in refusal_lines(exc, argv):
            write_line(line, sys.stdout if stream == "out" else sys.stderr)
        return 1
    return None


def _converse(sock: socket.socket, args: Any) -> int:
    # cf reads its y/N answers from standard input, a terminal or not (a
    # script may pipe them in); only with no standard input at all can
    # nobody be asked.
    interactive = sys.stdin is not None and not sys.stdin.closed
    cwd = os.getcwd()
    request = {"hello": daemon.hello(), "run": list(args.command), "cwd": cwd, "interactive": interactive}
    try:
        sock.sendall(daemon.encode(request))
        with sock.makefile("rb") as reader:
            while True:
                try:
                    raw = reader.readline()
                except ConnectionError:
                    raw = b""
                if not raw:
                    print(
                        f"The minifoundry process serving {args.data_dir} went away before the command ended.",
                        file=sys.stderr,
                    )
                    return 1
                message = json.loads(raw)
                if "out" in message:
                    write_line(message["out"])
                elif "err" in message:
                    write_line(message["err"], sys.stderr)
                elif "confirm" in message:
                    sock.sendall(daemon.encode({"answer": _ask(message["confirm"])}))
                elif "exit" in message:
                    return int(message["exit"])
                elif "read" in message:
                    # A serve from before one-shot commands: it offers a REPL session.
                    print(
                        f"The minifoundry serving {args.data_dir} is too old to run one command; "
                        f"restart it: {daemon.stop_hint(args.data_dir)}",
                        file=sys.stderr,
                    )
                    return 1
    except KeyboardInterrupt:
        try:
            sock.sendall(daemon.encode({"cancel": True}))
        except OSError:
            pass  # it went away: nothing left to cancel
        return 130
    except ValueError:
        print(f"The minifoundry serving {args.data_dir} answered something this client cannot read.", file=sys.stderr)
        return 1
    except OSError:  # the socket, not our standard output (write_line sees to that)
        print(f"The minifoundry process serving {args.data_dir} went away before the command ended.", file=sys.stderr)
        return 1


def _ask(question: str) -> bool | None:
    """cf's y/N prompt: `y`, `Y`, `yes` or `n`, `N`, `no` (an empty line is
    no); anything else asks again; the end of input is None (cf: `EOF`).
    Read from a pipe, the answer is echoed after the prompt, as cf does."""
    try:
        terminal = sys.stdin.isatty()
    except ValueError:
        return None
    while True:
        sys.stdout.write(f"{question} [yN]: ")
        sys.stdout.flush()
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            return None
        if line == "":
            return None
        answer = line.rstrip("\n").replace("\r", "")
        if not terminal:
            sys.stdout.write(answer + "\n")
        if answer in ("y", "Y", "yes"):
            return True
        if answer in ("n", "N", "no", ""):
            return False
        sys.stdout.write("invalid input (not y, n, yes, or no)\n")
