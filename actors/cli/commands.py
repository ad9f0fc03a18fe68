"""The cf commands the CLI understands: names, flags, usage and help text.

`parse(argv)` turns `["push", "hello", "-i", "2"]` into a `Command`; anything
it does not understand is an `UnknownCommand` or `IncorrectUsage` error with
cf's wording, never an argparse exit.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from protocol.errors import IncorrectUsage, UnknownCommand

__all__ = ["COMMANDS", "Command", "help_text", "parse"]


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: argparse.Namespace


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit
        raise IncorrectUsage(f"Incorrect Usage: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise IncorrectUsage(message or "Incorrect Usage")


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    usage: str
    summary: str
    build: Any


def _push(p: _Parser) -> None:
    p.add_argument("app", nargs="?")
    p.add_argument("-p", "--path", dest="path")
    p.add_argument("-f", "--manifest", dest="manifest")
    p.add_argument("-i", "--instances", dest="instances")
    p.add_argument("-m", "--memory", dest="memory")
    p.add_argument("-k", "--disk", dest="disk")
    p.add_argument("-b", "--buildpack", dest="buildpacks", action="append")
    p.add_argument("-c", "--start-command", dest="command")
    p.add_argument("-s", "--stack", dest="stack")
    p.add_argument("-u", "--health-check-type", dest="health_check_type")
    p.add_argument("--endpoint", dest="endpoint")
    p.add_argument("-t", "--app-start-timeout", dest="timeout")
    p.add_argument("--no-start", action="store_true")
    p.add_argument("--no-route", action="store_true")
    p.add_argument("--random-route", action="store_true")
    p.add_argument("--no-manifest", action="store_true")


def _app_only(p: _Parser) -> None:
    p.add_argument("app")


def _app_guid(p: _Parser) -> None:
    p.add_argument("app")
    p.add_argument("--guid", action="store_true")


def _scale(p: _Parser) -> None:
    p.add_argument("app")
    p.add_argument("-i", "--instances", dest="instances")
    p.add_argument("-m", "--memory", dest="memory")
    p.add_argument("-k", "--disk", dest="disk")
    p.add_argument("-f", "--force", action="store_true")


def _delete(p: _Parser) -> None:
    p.add_argument("app")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-r", "--delete-routes", action="store_true")


def _logs(p: _Parser) -> None:
    p.add_argument("app")
    p.add_argument("--recent", action="store_true")


def _trace(p: _Parser) -> None:
    p.add_argument("app")
    p.add_argument("--svg", dest="svg")
    p.add_argument("--html", dest="html")


def _none(p: _Parser) -> None:
    pass


def _help(p: _Parser) -> None:
    p.add_argument("topic", nargs="?")


COMMANDS: dict[str, _Spec] = {
    "push": _Spec(
        "push APP_NAME [-p PATH] [-f MANIFEST] [-i N] [-m MEMORY] [-k DISK] [-b BUILDPACK]... [-c COMMAND]"
        " [-s STACK] [-u HEALTH_CHECK_TYPE] [--endpoint PATH] [-t TIMEOUT] [--no-start] [--no-route]"
        " [--random-route] [--no-manifest]",
        "Push a new app or sync changes to an existing app",
        _push,
    ),
    "apps": _Spec("apps", "List all apps in the target space", _none),
    "app": _Spec("app APP_NAME [--guid]", "Display health and status for an app", _app_guid),
    "scale": _Spec(
        "scale APP_NAME [-i INSTANCES] [-m MEMORY] [-k DISK] [-f]",
        "Change or view the instance count, disk and memory",
        _scale,
    ),
    "start": _Spec("start APP_NAME", "Start an app (staging it first if it has no droplet)", _app_only),
    "stop": _Spec("stop APP_NAME", "Stop an app", _app_only),
    "restart": _Spec(
        "restart APP_NAME", "Stop all instances of the app, then start them again (no new build)", _app_only
    ),
    "restage": _Spec("restage APP_NAME", "Stage the app's newest package into a new droplet, then restart", _app_only),
    "delete": _Spec("delete APP_NAME [-f] [-r]", "Delete an app", _delete),
    "logs": _Spec("logs APP_NAME [--recent]", "Tail or show recent logs for an app", _logs),
    "events": _Spec("events APP_NAME", "Show recent app events", _app_only),
    "cells": _Spec("cells", "Show every cell: zone, state, memory, disk, containers, instances", _none),
    "trace": _Spec(
        "trace APP_NAME [--svg FILE] [--html FILE]",
        "Draw the last push/restart/restage of an app as a sequence diagram of the seed's 12 steps",
        _trace,
    ),
    "help": _Spec("help [COMMAND]", "Show help", _help),
}


def _parser(name: str) -> _Parser:
    spec = COMMANDS[name]
    parser = _Parser(prog=name, usage=spec.usage, add_help=False, allow_abbrev=False)
    spec.build(parser)
    return parser


def parse(argv: list[str] | tuple[str, ...]) -> Command:
    if not argv:
        raise IncorrectUsage("Incorrect Usage: no command given; try 'help'")
    name, *rest = argv
    extra = set(EXTRA_COMMANDS)
    if name not in COMMANDS:
        if name in extra:
            return Command(name, argparse.Namespace(argv=list(rest)))
        raise UnknownCommand(f"'{name}' is not a registered command. See 'help'.")
    args = _parser(name).parse_args(list(rest))
    return Command(name, args)


def help_text(topic: str | None = None) -> list[str]:
    if topic:
        spec = COMMANDS.get(topic)
        if spec is None:
            extra = EXTRA_COMMANDS.get(topic)
            if extra is None:
                raise UnknownCommand(f"'{topic}' is not a registered command. See 'help'.")
            return ["NAME:", f"   {topic} - {extra[1]}", "", "USAGE:", f"   {extra[0]}"]
        return ["NAME:", f"   {topic} - {spec.summary}", "", "USAGE:", f"   {spec.usage}"]
    width = max(len(n) for n in [*COMMANDS, *EXTRA_COMMANDS])
    lines = ["minifoundry: Cloud Foundry's cf push pipeline as actors.", "", "Commands:"]
    for name, spec in COMMANDS.items():
        lines.append(f"   {name.ljust(width)}   {spec.summary}")
    if EXTRA_COMMANDS:
        lines += ["", "Platform:"]
        for name, (_, summary) in EXTRA_COMMANDS.items():
            lines.append(f"   {name.ljust(width)}   {summary}")
    lines += ["", "Use 'help COMMAND' for a command's usage."]
    return lines


#: Commands handled outside the CLI actor (the REPL and run.py add theirs):
#: name -> (usage, summary).
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {}
