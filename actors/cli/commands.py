"""The cf commands the CLI understands, parsed as cf v8 parses them.

`parse(argv, cwd)` turns ``["push", "hello", "-i", "2"]`` into a `Command`.
What it does not understand fails the way cf v8's parser fails, in its
words (`UsageError`): an unknown command names `cf help -a`; an unknown flag,
a flag without its value, a value of the wrong kind or a missing argument is
``Incorrect Usage: ...`` followed by the command's help (no FAILED, as go-flags
reports it); an extra argument is ``Incorrect Usage: unexpected argument`` with
FAILED before the help, as cf's own checks report it. Flags take ``-i 2``,
``-i2``, ``-i=2``, ``--instances 2`` and ``--instances=2``; short booleans
group (``-rf``). `help_text` writes cf's help layouts for these commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.errors import IncorrectUsage, UnknownCommand

__all__ = [
    "ALIASES",
    "COMMANDS",
    "EXTRA_COMMANDS",
    "Command",
    "Flag",
    "Spec",
    "UsageError",
    "help_text",
    "parse",
    "refusal_lines",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: argparse.Namespace


class UsageError(IncorrectUsage):
    """A command line cf v8 refuses before running anything. `shown_help`
    is the command whose help follows; `failed` says whether FAILED is
    printed before it (cf's own checks) or not (its flag parser's)."""

    def __init__(self, message: str, command: str | None, *, failed: bool = False) -> None:
        super().__init__(message)
        self.command = command
        self.failed = failed


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    long: str | None
    short: str | None
    dest: str
    help: str
    value: bool = True  # takes a value (else a boolean)
    repeat: bool = False
    check: Callable[[str, str, Path], Any] | None = None  # (value, shown name, cwd) -> parsed value
    default: str | None = None

    @property
    def shown(self) -> str:
        """As go-flags names it in errors: ``-i, --instances``, ``-k`` or ``--guid``."""
        names = [f"-{self.short}" if self.short else None, f"--{self.long}" if self.long else None]
        return ", ".join(n for n in names if n)

    @property
    def listed(self) -> str:
        """As `cf help CMD` lists it: ``--instances, -i``."""
        names = [f"--{self.long}" if self.long else None, f"-{self.short}" if self.short else None]
        return ", ".join(n for n in names if n)


@dataclasses.dataclass(frozen=True, slots=True)
class Spec:
    name: str
    summary: str
    usage: str  # the first usage line, without "cf " (e.g. "push APP_NAME [-b ...]")
    positionals: tuple[tuple[str, str, bool], ...] = ()  # (NAME, dest, required)
    flags: tuple[Flag, ...] = ()
    alias: str | None = None
    usage_more: tuple[str, ...] = ()  # further usage lines, as cf's help prints them
    environment: tuple[tuple[str, str], ...] = ()
    see_also: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    category: str = "Application lifecycle"


# --- value checks: go-flags' unmarshalers, in cf's words ----------------------------------------------

_MEGABYTES = re.compile(r"\d+(M|MB|G|GB)", re.IGNORECASE)
_STAGING_ENV = ("CF_STAGING_TIMEOUT=15", "Max wait time for staging, in minutes")
_STARTUP_ENV = ("CF_STARTUP_TIMEOUT=5", "Max wait time for app instance startup, in minutes")


_INT_MAX = 2**31 - 1  # what CC_DB's integer columns (and Cloud Controller's) hold


def _instances(value: str, _shown: str, _cwd: Path) -> int:
    if not re.fullmatch(r"\d+", value) or int(value) > _INT_MAX:
        raise _usage("invalid argument for flag '-i' (expected int > 0)")
    return int(value)


def _megabytes(value: str, _shown: str, _cwd: Path) -> str:
    match = _MEGABYTES.fullmatch(value)
    if not match or int(value[: match.start(1)]) * (1024 if match.group(1).upper().startswith("G") else 1) > _INT_MAX:
        raise _usage("Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB")
    return value


def _positive(value: str, shown: str, _cwd: Path) -> int:
    if not re.fullmatch(r"[+-]?\d+", value):
        raise _usage(
            f"invalid argument for flag `{shown}' (expected flag.PositiveInteger): "
            f'strconv.ParseInt: parsing "{value}": invalid syntax'
        )
    number = int(value)
    if number < 1:
        raise _usage("Value must be greater than or equal to 1.")
    return number


def _health_check(value: str, _shown: str, _cwd: Path) -> str:
    if value not in ("port", "process", "http"):
        raise _usage('HEALTH_CHECK_TYPE must be "port", "process", or "http"')
    return value


def _existing_path(value: str, _shown: str, cwd: Path) -> str:
    if not os.path.lexists(cwd / value):
        raise _usage(f"The specified path '{value}' does not exist.")
    return value


def _manifest_path(value: str, shown: str, cwd: Path) -> str:
    _existing_path(value, shown, cwd)
    full = cwd / value
    if full.is_dir() and not ((full / "manifest.yml").is_file() or (full / "manifest.yaml").is_file()):
        raise _usage(f"The specified directory '{value}' does not contain a file named 'manifest.yml'.")
    return value


def _usage(message: str) -> UsageError:
    return UsageError(f"Incorrect Usage: {message}", None)


# --- the commands ------------------------------------------------------------------------------------


def _flag(long: str | None, short: str | None, help: str, **kw: Any) -> Flag:
    dest = kw.pop("dest", None) or (long or short or "").replace("-", "_")
    return Flag(long, short, dest, help, **kw)


_APP = (("APP_NAME", "app", True),)

_SPECS = (
    Spec(
        "push",
        "Push a new app or sync changes to an existing app",
        "push APP_NAME [-b BUILDPACK_NAME]",
        (("APP_NAME", "app", False),),
        (
            _flag(
                "app-start-timeout",
                "t",
                "Time (in seconds) allowed to elapse between starting up an app and the first healthy "
                "response from the app",
                dest="timeout",
                check=_positive,
            ),
            _flag(
                "buildpack",
                "b",
                "Custom buildpack by name (e.g. my-buildpack). To use built-in buildpacks only, "
                "specify 'default' or 'null'",
                dest="buildpacks",
                repeat=True,
            ),
            _flag("disk", "k", "Disk limit (e.g. 256M, 1024M, 1G)", check=_megabytes),
            _flag(
                "endpoint",
                None,
                "Valid path on the app for an HTTP health check. Only used when specifying --health-check-type=http",
            ),
            _flag(
                "health-check-type",
                "u",
                "Application health check type. Defaults to 'port'. 'http' requires a valid endpoint, "
                "for example, '/health'.",
                check=_health_check,
            ),
            _flag("instances", "i", "Number of instances", check=_instances),
            _flag("manifest", "f", "Path to manifest", check=_manifest_path),
            _flag("memory", "m", "Memory limit (e.g. 256M, 1024M, 1G)", check=_megabytes),
            _flag("no-manifest", None, "Ignore manifest file", value=False),
            _flag("no-route", None, "Do not map a route to this app", value=False),
            _flag("no-start", None, "Do not stage and start the app after pushing", value=False),
            _flag(
                "path",
                "p",
                "Path to app directory or to a zip file of the contents of the app directory",
                check=_existing_path,
            ),
            _flag(
                "random-route",
                None,
                "Create a random route for this app (except when no-route is specified in the manifest)",
                value=False,
            ),
            _flag(
                "stack",
                "s",
                "Stack to use (a stack is a pre-built file system, including an operating system, that can run apps)",
            ),
            _flag(
                "start-command",
                "c",
                "Startup command, set to null to reset to default start command",
                dest="command",
            ),
        ),
        alias="p",
        usage_more=(
            "   [-c COMMAND] [-f MANIFEST_PATH | --no-manifest] [--no-start] [-i NUM_INSTANCES]",
            "   [-k DISK] [-m MEMORY] [-p PATH] [-s STACK] [-t HEALTH_TIMEOUT]",
            "   [-u (process | port | http)] [--no-route | --random-route]",
        ),
        environment=(_STAGING_ENV, _STARTUP_ENV),
        see_also=("apps", "logs", "start"),
    ),
    Spec(
        "apps",
        "List all apps in the target space",
        "apps",
        (),
        (_flag("no-stats", None, "Do not retrieve process stats", value=False),),
        alias="a",
        examples=("cf apps",),
        see_also=("events", "logs", "push", "restart", "scale", "start", "stop"),
    ),
    Spec(
        "app",
        "Display health and status for an app",
        "app APP_NAME [--guid]",
        _APP,
        (
            _flag(
                "guid",
                None,
                "Retrieve and display the given app's guid.  All other health and status output for the "
                "app is suppressed.",
                value=False,
            ),
        ),
        see_also=("apps", "events", "logs", "push"),
    ),
    Spec(
        "scale",
        "Change or view the instance count, disk space limit, memory limit, and log rate limit for an app",
        "scale APP_NAME [--process PROCESS] [-i INSTANCES] [-k DISK] [-m MEMORY] [-f]",
        _APP,
        (
            _flag("force", "f", "Force restart of app without prompt", value=False),
            _flag("instances", "i", "Number of instances", check=_instances),
            _flag(None, "k", "Disk limit (e.g. 256M, 1024M, 1G)", dest="disk", check=_megabytes),
            _flag(None, "m", "Memory limit (e.g. 256M, 1024M, 1G)", dest="memory", check=_megabytes),
            _flag("process", None, "App process to scale", default="web"),
        ),
        usage_more=("", "   Modifying the app's disk or memory will cause the app to restart."),
        environment=(_STARTUP_ENV,),
        see_also=("push",),
    ),
    Spec(
        "start",
        "Start an app",
        "start APP_NAME",
        _APP,
        alias="st",
        usage_more=(
            "",
            "   If the app's most recent package is unstaged, starting the app will stage and run that package.",
            "   Otherwise, the app's current droplet will be run.",
        ),
        environment=(_STAGING_ENV, _STARTUP_ENV),
        see_also=("apps", "logs", "restart", "scale", "stop"),
    ),
    Spec(
        "stop",
        "Stop an app",
        "stop APP_NAME",
        _APP,
        alias="sp",
        see_also=("restart", "scale", "start"),
    ),
    Spec(
        "restart",
        "Stop all instances of the app, then start them again.",
        "restart APP_NAME",
        _APP,
        alias="rs",
        usage_more=(
            "",
            "   This command will cause downtime.",
            "",
            "   If the app's most recent package is unstaged, restarting the app will stage and run that package.",
            "   Otherwise, the app's current droplet will be run.",
        ),
        environment=(_STAGING_ENV, _STARTUP_ENV),
        see_also=("restage",),
    ),
    Spec(
        "restage",
        "Stage the app's latest package into a droplet and restart the app with this new droplet and updated "
        "configuration (environment variables, service bindings, buildpack, stack, etc.).",
        "restage APP_NAME",
        _APP,
        alias="rg",
        usage_more=("", "   This command will cause downtime."),
        examples=("cf restage APP_NAME",),
        environment=(_STAGING_ENV, _STARTUP_ENV),
        see_also=("restart",),
    ),
    Spec(
        "delete",
        "Delete an app",
        "delete APP_NAME [-r] [-f]",
        _APP,
        (
            _flag(None, "f", "Force deletion without confirmation", dest="force", value=False),
            _flag(None, "r", "Also delete any mapped routes", dest="delete_routes", value=False),
        ),
        alias="d",
        see_also=("apps", "scale", "stop"),
    ),
    Spec(
        "logs",
        "Tail or show recent logs for an app",
        "logs APP_NAME",
        _APP,
        (_flag("recent", None, "Dump recent logs instead of tailing", value=False),),
        see_also=("app", "apps"),
    ),
    Spec("events", "Show recent app events", "events APP_NAME", _APP, see_also=("app", "logs")),
    Spec(
        "cells",
        "Show every cell: zone, state, memory, disk, containers and instances",
        "cells",
        category="minifoundry",
    ),
    Spec(
        "trace",
        "Draw the last push, restart or restage of an app as a sequence diagram of the seed's 12 steps",
        "trace APP_NAME [--svg FILE] [--html FILE]",
        _APP,
        (
            _flag("html", None, "Write the diagram as an HTML page to FILE"),
            _flag("svg", None, "Write the diagram as an SVG picture to FILE"),
        ),
        category="minifoundry",
        see_also=("events", "logs"),
    ),
    Spec(
        "help",
        "Show help",
        "help [COMMAND]",
        (("COMMAND", "topic", False),),
        (_flag(None, "a", "All available CLI commands", dest="all", value=False),),
        alias="h",
        category="Before getting started",
    ),
)

COMMANDS: dict[str, Spec] = {spec.name: spec for spec in _SPECS}
ALIASES: dict[str, str] = {spec.alias: spec.name for spec in _SPECS if spec.alias}
#: Commands handled outside the CLI actor (the REPL and run.py add theirs):
#: name -> (usage, summary).
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {}


# --- parsing -----------------------------------------------------------------------------------------


def _unknown_command(name: str) -> UnknownCommand:
    text = f"'{name}' is not a registered command. See 'cf help -a'"
    near = _suggestions(name)
    if near:
        text += "\n\nDid you mean?\n" + "\n".join(f"    {n}" for n in near)
    return UnknownCommand(text)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _suggestions(name: str) -> list[str]:
    """cf's spell check: names one deletion away from the input either way,
    or within an edit distance of 2 when both share a deletion."""
    word = name.lower()
    out = []
    for known in sorted({*COMMANDS, *EXTRA_COMMANDS}):
        near = (
            word == known
            or word in _deletions(known)
            or (known in _deletions(word) and len(known) > 2)
            or (bool((_deletions(word) | {word}) & (_deletions(known) | {known})) and _levenshtein(word, known) <= 2)
        )
        if near:
            out.append(known)
    return out


def refusal_lines(exc: IncorrectUsage | UnknownCommand, argv: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """What cf prints for a command line it refuses before running anything,
    as (stream, line): an unknown command's words on stderr; a usage error's
    on stderr, then the command's help on stdout, FAILED between them for
    cf's own checks, not for what its flag parser refuses."""
    if isinstance(exc, UnknownCommand):
        return [("err", line) for line in exc.message.split("\n")]
    command = getattr(exc, "command", None) or (ALIASES.get(argv[0], argv[0]) if argv else None)
    lines = [("err", exc.message)]
    lines += [("out", "FAILED"), ("out", "")] if getattr(exc, "failed", True) else [("err", "")]
    if command in COMMANDS:
        lines += [("out", line) for line in help_text(command)]
    return lines


def parse(argv: list[str] | tuple[str, ...], cwd: str | os.PathLike[str] = ".") -> Command:
    """The command `argv` asks for, or the `UsageError` cf v8 would give."""
    if not argv:
        return Command("help", argparse.Namespace(topic=None, all=False))
    name, *rest = argv
    name = ALIASES.get(name, name)
    if name not in COMMANDS:
        if name in EXTRA_COMMANDS:
            return Command(name, argparse.Namespace(argv=list(rest)))
        if name in ("-h", "--help"):
            return Command("help", argparse.Namespace(topic=rest[0] if rest else None, all=False))
        raise _unknown_command(name)
    spec = COMMANDS[name]
    if any(word in ("-h", "--help") for word in rest) and name != "help":
        return Command("help", argparse.Namespace(topic=name, all=False))
    try:
        return Command(name, _parse_args(spec, rest, Path(cwd)))
    except UsageError as exc:
        exc.command = name
        raise


def _parse_args(spec: Spec, words: list[str], cwd: Path) -> argparse.Namespace:
    by_long = {f.long: f for f in spec.flags if f.long}
    by_short = {f.short: f for f in spec.flags if f.short}
    values: dict[str, Any] = {f.dest: ([] if f.repeat else (None if f.value else False)) for f in spec.flags}
    for f in spec.flags:
        if f.default is not None:
            values[f.dest] = f.default
    positional: list[str] = []

    def take(flag: Flag, value: str | None, i: int) -> int:
        if not flag.value:
            values[flag.dest] = True
            return i
        if value is None:
            if i + 1 >= len(words) or (words[i + 1].startswith("-") and words[i + 1] != "-"):
                raise _usage(f"expected argument for flag `{flag.shown}'")
            i += 1
            value = words[i]
        checked = flag.check(value, flag.shown, cwd) if flag.check is not None else value
        if flag.repeat:
            values[flag.dest].append(checked)
        else:
            values[flag.dest] = checked
        return i

    i = 0
    only_positional = False
    while i < len(words):
        word = words[i]
        if only_positional or not word.startswith("-") or word == "-":
            positional.append(word)
        elif word == "--":
            only_positional = True
        elif word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            flag = by_long.get(key)
            if flag is None:
                raise _usage(f"unknown flag `{key}'")
            i = take(flag, value if eq else None, i)
        else:
            letters = word[1:]
            j = 0
            while j < len(letters):
                flag = by_short.get(letters[j])
                if flag is None:
                    raise _usage(f"unknown flag `{letters[j]}'")
                if flag.value:
                    attached = letters[j + 1 :]
                    i = take(flag, attached[1:] if attached.startswith("=") else (attached or None), i)
                    break
                take(flag, None, i)
                j += 1
        i += 1
    padded: list[str | None] = [*positional, *[None] * len(spec.positionals)]
    for (shown, dest, required), given in zip(spec.positionals, padded[: len(spec.positionals)], strict=True):
        if given is None and required:
            raise _usage(f"the required argument `{shown}` was not provided")
        values[dest] = given
    extra = positional[len(spec.positionals) :]
    if extra:
        raise UsageError(f'Incorrect Usage: unexpected argument "{" ".join(extra)}"', None, failed=True)
    if spec.name == "push":
        values.setdefault("buildpacks", [])
        if not values["buildpacks"]:
            values["buildpacks"] = None
    return argparse.Namespace(**values)


# --- help --------------------------------------------------------------------------------------------


def help_text(topic: str | None = None, *, everything: bool = False) -> list[str]:
    """`cf help`, `cf help -a` and `cf help CMD`, in cf v8's layouts."""
    if topic:
        name = ALIASES.get(topic, topic)
        spec = COMMANDS.get(name)
        if spec is None:
            extra = EXTRA_COMMANDS.get(name)
            if extra is None:
                raise UnknownCommand(f"'{topic}' is not a registered command. See 'cf help -a'")
            return ["NAME:", f"   {name} - {extra[1]}", "", "USAGE:", f"   {extra[0]}"]
        return _command_help(spec)
    return _all_help() if everything else _common_help()


def _command_help(spec: Spec) -> list[str]:
    lines = ["NAME:", f"   {spec.name} - {spec.summary}", "", "USAGE:", f"   cf {spec.usage}", *spec.usage_more]
    if spec.examples:
        lines += ["", "EXAMPLES:", *(f"   {e}" for e in spec.examples)]
    if spec.alias:
        lines += ["", "ALIAS:", f"   {spec.alias}"]
    if spec.flags:
        flags = sorted(spec.flags, key=lambda f: f.long or f.short or "")
        width = max(len(f.listed) for f in flags) + 6
        lines += ["", "OPTIONS:"]
        for f in flags:
            default = f" (Default: {f.default})" if f.default else ""
            lines.append(f"   {f.listed.ljust(width)}{f.help}{default}")
    if spec.environment:
        lines += ["", "ENVIRONMENT:", *(f"   {name:<29}{text}" for name, text in spec.environment)]
    see_also = sorted((s for s in spec.see_also if s in COMMANDS), key=str.lower)
    if see_also:
        lines += ["", "SEE ALSO:", f"   {', '.join(see_also)}"]
    return lines


_LIFECYCLE = (
    ("apps", "logs", "events"),
    ("push", "app", "delete"),
    ("start", "scale", ""),
    ("stop", "", ""),
    ("restart", "", ""),
    ("restage", "", ""),
)


def _cell(name: str) -> str:
    if not name:
        return ""
    alias = COMMANDS[name].alias if name in COMMANDS else None
    return f"{name},{alias}" if alias else name


def _common_help() -> list[str]:
    from actors.cli.render import table

    lines = [
        "minifoundry: Cloud Foundry's cf push pipeline on one platform, with cf v8's commands",
        "Usage: cf [global options] command [arguments...] [command options]",
        "",
        "Before getting started:",
        *table([["help,h"]], prefix="  ", padding=4),
        "",
        "Application lifecycle:",
        *table([[_cell(n) for n in row] for row in _LIFECYCLE], prefix="  ", padding=4),
        "",
        "minifoundry:",
        *table([["cells", "trace"]], prefix="  ", padding=4),
    ]
    if EXTRA_COMMANDS:
        names = sorted(EXTRA_COMMANDS)
        rows = [names[i : i + 4] for i in range(0, len(names), 4)]
        lines += ["", "Platform and faults:", *table(rows, prefix="  ", padding=4)]
    lines += [
        "",
        "Global options:",
        *table([["--help, -h", "Show help"]], prefix="  ", padding=25),
        "",
        "TIP: Use 'cf help -a' to see all commands.",
    ]
    return lines


def _all_help() -> list[str]:
    names = [*COMMANDS, *EXTRA_COMMANDS]
    width = max(len(n) for n in names) + 1
    lines = [
        "NAME:",
        "   cf - A command line tool to interact with Cloud Foundry",
        "",
        "USAGE:",
        "   cf [global options] command [arguments...] [command options]",
        "",
    ]
    categories: dict[str, list[str]] = {}
    for spec in COMMANDS.values():
        categories.setdefault(spec.category.upper(), []).append(spec.name)
    for category, members in categories.items():
        lines.append(f"{category}:")
        for name in members:
            lines.append(f"   {name.ljust(width)}{COMMANDS[name].summary}")
        lines.append("")
    if EXTRA_COMMANDS:
        lines.append("PLATFORM AND FAULTS:")
        for name, (_usage_line, summary) in sorted(EXTRA_COMMANDS.items()):
            lines.append(f"   {name.ljust(width)}{summary}")
        lines.append("")
    lines += [
        "ENVIRONMENT VARIABLES:",
        "   CF_STAGING_TIMEOUT=15                  Max wait time for staging, in minutes",
        "   CF_STARTUP_TIMEOUT=5                   Max wait time for app instance startup, in minutes",
        "",
        "GLOBAL OPTIONS:",
        "   --help, -h                         Show help",
    ]
    return lines
