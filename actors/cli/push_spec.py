"""What a push asks for: the manifest (if any) and `cf push`'s flags, made
into one `AppSpec` per app, with which of its fields the user set (on an
existing app, only those change). The one home of this on the CLI side;
Cloud Controller decides the routes the user did not (the default route).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from actors.cli.manifest_diff import displayed_manifest
from actors.manifest import AUTODETECT, ManifestNotYaml, is_int, load_manifest, normalise_buildpacks
from actors.manifest import health_check_type as parse_health_check_type
from protocol.errors import IncorrectUsage, InvalidManifest, PathNotFound
from protocol.manifest import (
    DEFAULT_HTTP_ENDPOINT,
    MAX_DB_INT,
    MAX_HEALTH_CHECK_TIMEOUT_S,
    AppSpec,
    parse_size_mb,
    show,
    validate_app_name,
)
from protocol.states import HealthCheckType

__all__ = ["PushPlan", "apply_flags", "default_spec", "number", "push_plans"]


@dataclasses.dataclass(frozen=True, slots=True)
class PushPlan:
    """One app of a push: what to ask for, which fields the user set, from
    which manifest, and (with a manifest) its entry as cf shows it back."""

    spec: AppSpec
    explicit: frozenset[str]
    manifest: Path | None
    shown: dict[str, Any] | None = None


NAME_REQUIRED = (
    "Incorrect Usage: The push command requires an app name. "
    "The app name can be supplied as an argument or with a manifest.yml file."
)
FLAGS_WITH_MANY = (
    "Incorrect Usage: Command line flags (except -f and --no-start) cannot be applied when pushing "
    "multiple apps from a manifest file."
)


def number(value: str | None, flag: str) -> int | None:
    """A flag's whole-number value, or cf's Incorrect Usage."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise IncorrectUsage(f"Incorrect Usage: invalid argument for flag '{flag}' (expected int > 0)") from None


def _usage(message: str) -> IncorrectUsage:
    from actors.cli.commands import UsageError

    return UsageError(message, "push", failed=True)


def push_plans(args: Any, cwd: Path, warn: Callable[[str], None] | None = None) -> list[PushPlan]:
    """The apps `cf push` with these parsed arguments pushes, from `cwd`: as
    cf v8, the manifest is `-f`'s, else `manifest.yml` (or `.yaml`) in `cwd`."""
    manifest_path: Path | None = None
    if args.manifest and args.no_manifest:
        raise _usage("Incorrect Usage: The following arguments cannot be used together: --no-manifest, --manifest, -f")
    if getattr(args, "no_route", False) and getattr(args, "random_route", False):
        raise _usage("Incorrect Usage: The following arguments cannot be used together: --no-route, --random-route")
    if args.manifest:
        manifest_path = (cwd / args.manifest).resolve()
        if manifest_path.is_dir():
            yml = manifest_path / "manifest.yml"
            manifest_path = yml if yml.is_file() else manifest_path / "manifest.yaml"
        if not manifest_path.exists():
            raise PathNotFound(f"The specified path '{args.manifest}' does not exist.")
    elif not args.no_manifest:
        for candidate in (cwd / "manifest.yml", cwd / "manifest.yaml"):
            if candidate.is_file():
                manifest_path = candidate.resolve()
                break
    flags = _flags(args, cwd)
    given = _flag_fields({k for k, v in flags.items() if v not in (None, False)})
    if manifest_path is not None:
        try:
            manifest = load_manifest(manifest_path)
        except ManifestNotYaml:
            raise InvalidManifest(f"Unable to push app because manifest {manifest_path} is not valid yaml.") from None
        for text in manifest.warnings:  # unknown keys, deprecations: the push goes on
            if warn is not None:
                warn(text)
        apps = list(zip(manifest.apps, manifest.entries, strict=True))
        if args.app:
            validate_app_name(args.app)
            named = [(a, e) for a, e in apps if a.name == args.app]
            if named:
                apps = named
            elif len(apps) == 1:
                spec, entry = apps[0]
                apps = [(dataclasses.replace(spec, name=args.app), {**entry, "name": args.app})]
            else:
                raise InvalidManifest(f"Could not find app named '{args.app}' in manifest")
        elif len(apps) > 1 and any(v not in (None, False) for k, v in flags.items()):
            raise _usage(FLAGS_WITH_MANY)
        plans = []
        for spec, entry in apps:
            explicit = _explicit(spec) | given
            spec = _apply(spec, flags)
            if spec.path is None:
                spec = dataclasses.replace(spec, path=str(manifest_path.parent))
            shown = displayed_manifest(entry, _shown_flags(args, flags))
            plans.append(PushPlan(spec, frozenset(explicit), manifest_path, shown))
        return plans
    if not args.app:
        raise _usage(NAME_REQUIRED)
    spec = _apply(default_spec(args.app), flags)
    if spec.path is None:
        spec = dataclasses.replace(spec, path=str(cwd))
    return [PushPlan(spec, frozenset(given), None)]


def _shown_flags(args: Any, flags: dict[str, Any]) -> dict[str, Any]:
    """The flags as cf writes them into the manifest it shows (its keys)."""
    return {
        "instances": flags["instances"],
        "memory": args.memory,
        "disk-quota": args.disk,
        "buildpacks": list(args.buildpacks) if args.buildpacks else None,
        "command": args.command,
        "path": flags["path"],
        "stack": args.stack,
        "health-check-type": args.health_check_type,
        "health-check-http-endpoint": args.endpoint,
        "timeout": flags["timeout"],
        "no-route": True if args.no_route else None,
        "random-route": True if args.random_route else None,
    }


def _flags(args: Any, cwd: Path) -> dict[str, Any]:
    return {
        "instances": args.instances if isinstance(args.instances, int) else number(args.instances, "-i"),
        "memory": args.memory,
        "disk": args.disk,
        "buildpacks": args.buildpacks,
        "command": args.command,
        "path": str((cwd / args.path).resolve()) if args.path else None,
        "stack": args.stack,
        "health_check_type": args.health_check_type,
        "health_check_http_endpoint": args.endpoint,
        "timeout": args.timeout if isinstance(args.timeout, int) else number(args.timeout, "-t"),
        "no_route": args.no_route or None,
        "random_route": args.random_route or None,
    }


def _apply(spec: AppSpec, flags: dict[str, Any]) -> AppSpec:
    try:
        return apply_flags(spec, **flags)
    except ValueError as exc:
        raise IncorrectUsage(f"Incorrect Usage: {exc}") from None


def _explicit(spec: AppSpec) -> set[str]:
    """Fields a manifest set to something other than the default."""
    defaults = AppSpec(name=spec.name)
    return {
        f.name
        for f in dataclasses.fields(AppSpec)
        if f.name not in ("name", "path") and getattr(spec, f.name) != getattr(defaults, f.name)
    }


_FLAG_FIELDS = {
    "instances": "instances",
    "memory": "memory_mb",
    "disk": "disk_mb",
    "buildpacks": "buildpacks",
    "command": "command",
    "stack": "stack",
    "health_check_type": "health_check_type",
    "health_check_http_endpoint": "health_check_http_endpoint",
    "timeout": "timeout_s",
    "no_route": "no_route",
    "random_route": "random_route",
}


def _flag_fields(flags: set[str]) -> set[str]:
    return {_FLAG_FIELDS[f] for f in flags if f in _FLAG_FIELDS}


def apply_flags(
    spec: AppSpec,
    *,
    instances: int | None = None,
    memory: str | int | None = None,
    disk: str | int | None = None,
    buildpacks: Iterable[str] | None = None,
    command: str | None = None,
    path: str | os.PathLike[str] | None = None,
    stack: str | None = None,
    health_check_type: str | HealthCheckType | None = None,
    health_check_http_endpoint: str | None = None,
    timeout: int | None = None,
    no_route: bool | None = None,
    random_route: bool | None = None,
) -> AppSpec:
    """`cf push` flags over a spec: a flag given (not None) wins.

    `memory`/`disk` take ``"256M"`` strings (as typed after ``-m``/``-k``) or
    ints already in MB. ``-b default`` / ``-c null`` go back to auto-detect and
    the buildpack's start command. Bad values raise `ValueError` with the
    message cf prints after ``Incorrect Usage:``.
    """
    changes: dict[str, Any] = {}
    if instances is not None:
        if not is_int(instances) or not 0 <= instances <= MAX_DB_INT:
            raise ValueError(
                f"invalid argument for flag '-i': {show(instances)} (expected an integer from 0 to {MAX_DB_INT})"
            )
        changes["instances"] = instances
    for flag, field, value in (("-m", "memory_mb", memory), ("-k", "disk_mb", disk)):
        if value is None:
            continue
        if is_int(value):
            if not 0 < value <= MAX_DB_INT:
                raise ValueError(f"invalid argument for flag '{flag}': {show(value)} (must be positive)")
            changes[field] = value
        else:
            try:
                changes[field] = parse_size_mb(value)
            except ValueError as exc:
                raise ValueError(f"invalid argument for flag '{flag}': {exc}") from None
    if buildpacks is not None:
        names = [buildpacks] if isinstance(buildpacks, str) else list(buildpacks)
        if not all(isinstance(b, str) and b.strip() for b in names):
            raise ValueError("invalid argument for flag '-b': buildpack names must be non-empty")
        changes["buildpacks"] = normalise_buildpacks(
            [b.strip() for b in names], lambda m: ValueError(f"invalid argument for flag '-b': {m}")
        )
    if command is not None:
        changes["command"] = None if command.strip() in AUTODETECT else command
    if path is not None:
        changes["path"] = os.fspath(path)
    if stack is not None:
        if not stack.strip():
            raise ValueError("invalid argument for flag '-s': stack must not be empty")
        changes["stack"] = stack.strip()
    if health_check_type is not None:
        hc = parse_health_check_type(str(health_check_type))
        if hc is None:
            raise ValueError(
                f"invalid argument for flag '-u': {show(health_check_type)} (expected port, process or http)"
            )
        changes["health_check_type"] = hc
        if hc is not HealthCheckType.HTTP:
            changes["health_check_http_endpoint"] = None
        elif spec.health_check_http_endpoint is None:
            changes["health_check_http_endpoint"] = DEFAULT_HTTP_ENDPOINT
    if health_check_http_endpoint is not None:
        if not health_check_http_endpoint.startswith("/"):
            raise ValueError("invalid argument for flag '--endpoint': must start with '/'")
        if changes.get("health_check_type", spec.health_check_type) is not HealthCheckType.HTTP:
            raise ValueError("Health check type must be 'http' to set a health check HTTP endpoint")
        changes["health_check_http_endpoint"] = health_check_http_endpoint
    if timeout is not None:
        if not is_int(timeout) or not 1 <= timeout <= MAX_HEALTH_CHECK_TIMEOUT_S:
            raise ValueError(
                f"invalid argument for flag '-t': {show(timeout)} (expected 1 to {MAX_HEALTH_CHECK_TIMEOUT_S} seconds)"
            )
        changes["timeout_s"] = timeout
    if no_route:
        changes["no_route"] = True
        changes["random_route"] = False
        changes["routes"] = ()
    elif random_route:
        changes["random_route"] = True  # routes the user listed stay
        changes["no_route"] = False
    return dataclasses.replace(spec, **changes)


def default_spec(name: str, **overrides: Any) -> AppSpec:
    """An `AppSpec` for a push without a manifest (Cloud Controller maps its default route)."""
    validate_app_name(name)
    return AppSpec(name=name, **overrides)
