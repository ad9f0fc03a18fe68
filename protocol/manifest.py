"""The app manifest: `manifest.yml` parsed into `AppSpec`s, `cf push` flag
overrides, and the app-name rule.

A manifest is YAML with an ``applications:`` list. Each application accepts
(hyphen and underscore spellings are the same key):

=============================  =====================================  ==================
key                            value                                  default
=============================  =====================================  ==================
name                           app name (required)
path                           app directory or archive; relative     the current dir
                               paths resolve against the manifest's
                               directory
memory                         ``256M``, ``1G``, ``512MB``, ``2gb``   ``1024M``
disk_quota                     same units as memory                   ``1024M``
instances                      integer >= 0                           1
buildpacks                     list of buildpack names                auto-detect
buildpack                      one name (deprecated; warns)
command                        start command                          the buildpack's
stack                          ``cflinuxfs4`` ...                     ``cflinuxfs4``
health-check-type              ``port``, ``process``, ``http``        ``port``
                               (``none`` = ``process``, warns)
health-check-http-endpoint     path starting with ``/`` (http only)   ``/`` for http
timeout                        health-check start timeout, seconds    60
env                            mapping; scalar values stringified
routes                         list of ``{route: host.domain[/path]}`` ``NAME.apps.internal``
no-route                       bool: no route at all                  false
random-route                   bool: a generated route                false
=============================  =====================================  ==================

Unknown keys do not fail the push: they come back as warnings on `Manifest`.
Invalid values raise `InvalidManifest` naming the application and the key.

Routes: `AppSpec.routes` is what the app will be mapped to, except that a
``random-route`` app without explicit routes has ``routes == ()`` and
``needs_random_route`` set: the platform picks the random host (with its own
seeded RNG), since parsing must stay deterministic.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from protocol.errors import InvalidAppName, InvalidManifest, PathNotFound
from protocol.states import HealthCheckType

__all__ = [
    "AppSpec",
    "DEFAULT_DISK_MB",
    "DEFAULT_DOMAIN",
    "DEFAULT_INSTANCES",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_STACK",
    "DEFAULT_TIMEOUT_S",
    "MAX_HEALTH_CHECK_TIMEOUT_S",
    "MAX_MANIFEST_BYTES",
    "Manifest",
    "apply_flags",
    "default_route",
    "default_spec",
    "load_manifest",
    "parse_manifest",
    "parse_size_mb",
    "validate_app_name",
]

DEFAULT_MEMORY_MB = 1024
DEFAULT_DISK_MB = 1024
DEFAULT_INSTANCES = 1
DEFAULT_STACK = "cflinuxfs4"
DEFAULT_TIMEOUT_S = 60
DEFAULT_DOMAIN = "apps.internal"
DEFAULT_HTTP_ENDPOINT = "/"
# Cloud Controller's default `maximum_health_check_timeout`.
MAX_HEALTH_CHECK_TIMEOUT_S = 180
# A manifest is a few hundred bytes; a megabyte is a mistake or an attack.
MAX_MANIFEST_BYTES = 1024 * 1024
# What a manifest may expand to once YAML aliases are followed (a "billion
# laughs" file is a few lines that expand to billions of values), and how
# deeply its values may nest.
MAX_MANIFEST_VALUES = 100_000
MAX_MANIFEST_DEPTH = 64
# Cloud Controller stores instances, memory and disk in 32-bit columns.
MAX_DB_INT = 2**31 - 1

_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SIZE = re.compile(r"(\d+)(M|MB|G|GB|T|TB)", re.IGNORECASE)
_UNIT_MB = {"M": 1, "MB": 1, "G": 1024, "GB": 1024, "T": 1024 * 1024, "TB": 1024 * 1024}
_ROUTE = re.compile(r"(\*|[A-Za-z0-9][A-Za-z0-9-]*)(\.[A-Za-z0-9][A-Za-z0-9-]*)+(:\d{1,5})?(/\S*)?")
_RESERVED_ENV = ("VCAP_", "CF_")

_KNOWN_KEYS = frozenset(
    {
        "name",
        "path",
        "memory",
        "disk-quota",
        "instances",
        "buildpacks",
        "buildpack",
        "command",
        "stack",
        "health-check-type",
        "health-check-http-endpoint",
        "timeout",
        "env",
        "routes",
        "no-route",
        "random-route",
    }
)
_KNOWN_TOP_LEVEL = frozenset({"applications", "version"})
# `default` and `null` ask Cloud Foundry to auto-detect (as on `cf push -b`).
_AUTODETECT = frozenset({"default", "null"})


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One application as the user asked for it (manifest plus flags)."""

    name: str
    path: str | None = None
    memory_mb: int = DEFAULT_MEMORY_MB
    disk_mb: int = DEFAULT_DISK_MB
    instances: int = DEFAULT_INSTANCES
    buildpacks: tuple[str, ...] = ()
    command: str | None = None
    stack: str = DEFAULT_STACK
    health_check_type: HealthCheckType = HealthCheckType.PORT
    health_check_http_endpoint: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    env: tuple[tuple[str, str], ...] = ()
    routes: tuple[str, ...] = ()
    no_route: bool = False
    random_route: bool = False

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def needs_random_route(self) -> bool:
        """True when the platform must generate this app's (only) route."""
        return self.random_route and not self.no_route and not self.routes


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest: its applications in file order, and warnings."""

    apps: tuple[AppSpec, ...]
    warnings: tuple[str, ...] = ()

    def app(self, name: str) -> AppSpec:
        for spec in self.apps:
            if spec.name == name:
                return spec
        raise InvalidManifest(f"Could not find app named '{name}' in manifest")


def validate_app_name(name: object) -> str:
    """Return `name` if Cloud Foundry (and a route host) can carry it."""
    if not isinstance(name, str) or not name:
        raise InvalidAppName("App name must not be empty")
    if len(name) > 63:
        raise InvalidAppName(f"App name '{name}' is longer than 63 characters")
    if not _APP_NAME.fullmatch(name):
        raise InvalidAppName(
            f"App name '{name}' is invalid: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    return name


def default_route(name: str, domain: str = DEFAULT_DOMAIN) -> str:
    """The route `cf push` maps when none is given: the name as a hostname."""
    # Hostnames allow only [a-z0-9-]; cf replaces the rest as it does here.
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "app"
    return f"{host}.{domain}"


def default_spec(name: str, **overrides: Any) -> AppSpec:
    """An `AppSpec` for a push without a manifest, with its default route."""
    validate_app_name(name)
    if "routes" not in overrides and not overrides.get("no_route") and not overrides.get(
        "random_route"
    ):
        overrides["routes"] = (default_route(name),)
    return AppSpec(name=name, **overrides)


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 4
_REPR.maxlevel = 2


def _show(value: object) -> str:
    """A value for an error message: short, whatever it is (never a whole
    expanded structure echoed back)."""
    return _REPR.repr(value)


def parse_size_mb(value: object) -> int:
    """``"256M"``/``"1G"``/``"2gb"`` → megabytes; `ValueError` otherwise.

    Bare numbers are refused on purpose: cf refuses them, since ``memory: 1``
    almost always means a gigabyte, not a megabyte.
    """
    if isinstance(value, str):
        m = _SIZE.fullmatch(value.strip())
        if m and len(m.group(1)) <= 20:
            mb = int(m.group(1)) * _UNIT_MB[m.group(2).upper()]
            if mb > MAX_DB_INT:
                raise ValueError(f"must be at most {MAX_DB_INT} MB (got {_show(value)})")
            if mb > 0:
                return mb
    raise ValueError(f"must be an integer with a unit of measurement like M, MB, G, or GB (got {_show(value)})")


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and parse the manifest file at `path`."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"Manifest {p} is larger than {MAX_MANIFEST_BYTES} bytes")
        data = p.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotFound(f"Manifest file {p} does not exist") from None
    except IsADirectoryError:
        raise InvalidManifest(f"Manifest path {p} is a directory") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidManifest(f"Manifest {p} is not valid UTF-8") from None
    return parse_manifest(text, base_dir=p.parent.resolve(), source=str(p))


def parse_manifest(
    text: str, *, base_dir: str | os.PathLike[str] | None = None, source: str = "manifest.yml"
) -> Manifest:
    """Parse manifest YAML. Relative app paths resolve against `base_dir`."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise InvalidManifest(f"Manifest {source} is larger than {MAX_MANIFEST_BYTES} bytes")
    doc = _load_yaml(text, source)
    if not isinstance(doc, Mapping):
        raise InvalidManifest(f"Manifest {source} must be a mapping with an 'applications' list")
    warnings: list[str] = [
        f"Manifest {source}: unknown top-level key '{k}' ignored"
        for k in doc
        if k not in _KNOWN_TOP_LEVEL
    ]
    apps_raw = doc.get("applications")
    if not isinstance(apps_raw, list) or not apps_raw:
        raise InvalidManifest(f"Manifest {source} must have a non-empty 'applications' list")
    apps: list[AppSpec] = []
    seen: set[str] = set()
    for index, raw in enumerate(apps_raw):
        spec = _parse_app(raw, index, base_dir, warnings)
        if spec.name in seen:
            raise InvalidManifest(f"Application '{spec.name}' appears more than once in {source}")
        seen.add(spec.name)
        apps.append(spec)
    return Manifest(apps=tuple(apps), warnings=tuple(warnings))


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
        if not _is_int(instances) or not 0 <= instances <= MAX_DB_INT:
            raise ValueError(f"invalid argument for flag '-i': {_show(instances)} (expected an integer from 0 to {MAX_DB_INT})")
        changes["instances"] = instances
    for flag, field, value in (("-m", "memory_mb", memory), ("-k", "disk_mb", disk)):
        if value is None:
            continue
        if _is_int(value):
            if not 0 < value <= MAX_DB_INT:
                raise ValueError(f"invalid argument for flag '{flag}': {_show(value)} (must be positive)")
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
        changes["buildpacks"] = _normalise_buildpacks(
            [b.strip() for b in names], lambda m: ValueError(f"invalid argument for flag '-b': {m}")
        )
    if command is not None:
        changes["command"] = None if command.strip() in _AUTODETECT else command
    if path is not None:
        changes["path"] = os.fspath(path)
    if stack is not None:
        if not stack.strip():
            raise ValueError("invalid argument for flag '-s': stack must not be empty")
        changes["stack"] = stack.strip()
    if health_check_type is not None:
        hc = _health_check_type(str(health_check_type))
        if hc is None:
            raise ValueError(
                f"invalid argument for flag '-u': {_show(health_check_type)} (expected port, process or http)"
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
        if not _is_int(timeout) or not 1 <= timeout <= MAX_HEALTH_CHECK_TIMEOUT_S:
            raise ValueError(
                f"invalid argument for flag '-t': {_show(timeout)} "
                f"(expected 1 to {MAX_HEALTH_CHECK_TIMEOUT_S} seconds)"
            )
        changes["timeout_s"] = timeout
    if no_route:
        changes["no_route"] = True
        changes["random_route"] = False
        changes["routes"] = ()
    elif random_route:
        changes["random_route"] = True
        # Only the implicit default route gives way; routes the user listed stay.
        if spec.routes == (default_route(spec.name),) or spec.no_route:
            changes["routes"] = ()
        changes["no_route"] = False
    return dataclasses.replace(spec, **changes)


# --- parsing one application -------------------------------------------------


def _parse_app(raw: object, index: int, base_dir: Any, warnings: list[str]) -> AppSpec:
    if not isinstance(raw, Mapping):
        raise InvalidManifest(f"Application #{index + 1} must be a mapping of keys to values")
    fields: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InvalidManifest(f"Application #{index + 1}: key {_show(key)} is not a string")
        canon = key.replace("_", "-")
        if canon in spelled:
            raise InvalidManifest(
                f"Application #{index + 1}: '{spelled[canon]}' and '{key}' are the same key"
            )
        spelled[canon] = key
        fields[canon] = value

    name = fields.get("name")
    if name is None:
        raise InvalidManifest(f"Found an application with no name specified (application #{index + 1})")
    if not isinstance(name, str):
        raise InvalidManifest(f"Application #{index + 1}: name: must be a string, got {_show(name)}")
    validate_app_name(name)

    def bad(key: str, detail: str) -> InvalidManifest:
        return InvalidManifest(f"Application '{name}': {spelled.get(key, key)}: {detail}")

    for key in fields:
        if key not in _KNOWN_KEYS:
            warnings.append(f"Application '{name}': unknown key '{spelled[key]}' ignored")

    spec: dict[str, Any] = {"name": name}

    if (path := fields.get("path")) is not None:
        if not isinstance(path, str) or not path.strip():
            raise bad("path", f"must be a non-empty string, got {_show(path)}")
        if base_dir is not None and not os.path.isabs(path):
            path = os.path.normpath(os.path.join(os.fspath(base_dir), path))
        spec["path"] = path

    for key, field, what in (("memory", "memory_mb", "Memory"), ("disk-quota", "disk_mb", "Disk quota")):
        if (value := fields.get(key)) is not None:
            try:
                spec[field] = parse_size_mb(value)
            except ValueError as exc:
                raise bad(key, f"{what} {exc}") from None

    if (instances := fields.get("instances")) is not None:
        if not _is_int(instances) or not 0 <= instances <= MAX_DB_INT:
            raise bad("instances", f"must be an integer from 0 to {MAX_DB_INT}, got {_show(instances)}")
        spec["instances"] = instances

    if "buildpack" in fields and "buildpacks" in fields:
        raise InvalidManifest(
            f"Application '{name}' cannot use the combination of properties: buildpack, buildpacks"
        )
    if "buildpack" in fields:
        warnings.append(
            f"Application '{name}': Deprecation warning: Use of 'buildpack' attribute in manifest "
            "is deprecated in favor of 'buildpacks'."
        )
        legacy = fields["buildpack"]
        if legacy is None:
            spec["buildpacks"] = ()
        elif isinstance(legacy, str) and legacy.strip():
            spec["buildpacks"] = _normalise_buildpacks([legacy.strip()], lambda m: bad("buildpack", m))
        else:
            raise bad("buildpack", f"must be a buildpack name, got {_show(legacy)}")
    if (bps := fields.get("buildpacks")) is not None:
        if isinstance(bps, list):
            # `[null]` (YAML's null, not the string) also means auto-detect.
            bps = ["null" if b is None else b for b in bps]
        if not isinstance(bps, list) or not all(isinstance(b, str) and b.strip() for b in bps):
            raise bad("buildpacks", f"must be a list of buildpack names, got {_show(bps)}")
        spec["buildpacks"] = _normalise_buildpacks([b.strip() for b in bps], lambda m: bad("buildpacks", m))

    if (command := fields.get("command")) is not None:
        if not isinstance(command, str):
            raise bad("command", f"must be a string, got {_show(command)}")
        spec["command"] = None if command.strip() in _AUTODETECT or not command.strip() else command

    if (stack := fields.get("stack")) is not None:
        if not isinstance(stack, str) or not stack.strip():
            raise bad("stack", f"must be a stack name, got {_show(stack)}")
        spec["stack"] = stack.strip()

    hc = HealthCheckType.PORT
    if (hc_raw := fields.get("health-check-type")) is not None:
        parsed = _health_check_type(hc_raw) if isinstance(hc_raw, str) else None
        if parsed is None:
            raise bad("health-check-type", f"must be port, process or http, got {_show(hc_raw)}")
        if hc_raw.strip().lower() == "none":
            warnings.append(
                f"Application '{name}': health-check-type 'none' is deprecated; use 'process'"
            )
        hc = parsed
    spec["health_check_type"] = hc
    if (endpoint := fields.get("health-check-http-endpoint")) is not None:
        if not isinstance(endpoint, str) or not endpoint.startswith("/"):
            raise bad("health-check-http-endpoint", f"must be a path starting with '/', got {_show(endpoint)}")
        if hc is not HealthCheckType.HTTP:
            raise bad(
                "health-check-http-endpoint",
                "Health check type must be 'http' to set a health check HTTP endpoint",
            )
        spec["health_check_http_endpoint"] = endpoint
    elif hc is HealthCheckType.HTTP:
        spec["health_check_http_endpoint"] = DEFAULT_HTTP_ENDPOINT

    if (timeout := fields.get("timeout")) is not None:
        if not _is_int(timeout) or not 1 <= timeout <= MAX_HEALTH_CHECK_TIMEOUT_S:
            raise bad("timeout", f"must be an integer from 1 to {MAX_HEALTH_CHECK_TIMEOUT_S} seconds, got {_show(timeout)}")
        spec["timeout_s"] = timeout

    if (env := fields.get("env")) is not None:
        if not isinstance(env, Mapping):
            raise bad("env", f"must be a mapping of names to values, got {type(env).__name__}")
        pairs: dict[str, str] = {}
        for key, value in env.items():
            if not isinstance(key, str) or not key:
                raise bad("env", f"variable names must be non-empty strings, got {_show(key)}")
            pairs[key] = _env_value(value, name, key)
        _check_env_names(pairs, name)
        spec["env"] = tuple(pairs.items())

    for key in ("no-route", "random-route"):
        if (flag := fields.get(key)) is not None:
            if not isinstance(flag, bool):
                raise bad(key, f"must be true or false, got {_show(flag)}")
            spec[key.replace("-", "_")] = flag

    routes: tuple[str, ...] | None = None
    if (routes_raw := fields.get("routes")) is not None:
        if not isinstance(routes_raw, list):
            raise bad("routes", f"must be a list of {{route: ...}} mappings, got {_show(routes_raw)}")
        collected: list[str] = []
        for entry in routes_raw:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("route"), str):
                raise bad("routes", f"each entry must be a mapping with a 'route' string, got {_show(entry)}")
            route = entry["route"].strip()
            if not _ROUTE.fullmatch(route):
                raise bad("routes", f"'{route}' is not a valid route (host.domain[/path])")
            for extra in entry:
                if extra not in ("route", "protocol"):
                    warnings.append(f"Application '{name}': unknown route key '{extra}' ignored")
            if route not in collected:
                collected.append(route)
        routes = tuple(collected)
    for flag in ("no-route", "random-route"):
        if spec.get(flag.replace("-", "_")) and routes:
            raise InvalidManifest(
                f"Application '{name}' cannot use the combination of properties: {flag}, routes"
            )
    if spec.get("no_route") and spec.get("random_route"):
        raise InvalidManifest(
            f"Application '{name}' cannot use the combination of properties: no-route, random-route"
        )
    if routes is not None:
        spec["routes"] = routes
    elif not spec.get("no_route") and not spec.get("random_route"):
        spec["routes"] = (default_route(name),)

    return AppSpec(**spec)


# --- helpers -----------------------------------------------------------------


def _is_int(value: object) -> bool:
    # YAML `true` is a bool, and bool is an int subclass: refuse it explicitly.
    return isinstance(value, int) and not isinstance(value, bool)


def _health_check_type(text: str) -> HealthCheckType | None:
    text = text.strip().lower()
    if text == "none":
        return HealthCheckType.PROCESS
    try:
        return HealthCheckType(text)
    except ValueError:
        return None


def _normalise_buildpacks(names: list[str], fail: Callable[[str], Exception]) -> tuple[str, ...]:
    # `fail` builds the error: a manifest and a flag report it differently.
    if len(names) == 1 and names[0].lower() in _AUTODETECT:
        return ()
    if any(n.lower() in _AUTODETECT for n in names):
        raise fail("'default' and 'null' cannot be combined with other buildpacks")
    return tuple(names)


def _env_value(value: object, app: str, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidManifest(f"Application '{app}': env: {key}: {_show(value)} is not a usable value")
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InvalidManifest(
        f"Application '{app}': env: {key}: must be a string, number or boolean, got "
        f"{'nothing' if value is None else type(value).__name__}"
    )


def _check_env_names(env: Mapping[str, str], app: str) -> None:
    for key in env:
        if key == "PORT" or key.startswith(_RESERVED_ENV):
            raise InvalidManifest(
                f"Application '{app}': env: {key}: PORT and names starting with "
                "VCAP_ or CF_ are reserved by the platform"
            )


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())


class _StrictLoader(yaml.SafeLoader):
    """YAML as go-yaml reads a manifest: a key given twice in one mapping is
    an error, not a silent "last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise InvalidManifest(
                        f"mapping key {_show(key)} already defined at line {seen[key] + 1} "
                        f"(line {key_node.start_mark.line + 1})"
                    )
                seen[key] = key_node.start_mark.line
            except TypeError:
                continue  # an unhashable key: the constructor below says so
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str) -> Any:
    """Parse YAML, refusing duplicate keys, documents that nest too deeply and
    aliases that expand past `MAX_MANIFEST_VALUES` values."""
    loader = _StrictLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise InvalidManifest(f"Manifest {source} nests its values too deeply") from None
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise InvalidManifest(f"Manifest {source} is not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise InvalidManifest(f"Manifest {source} nests its values too deeply") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Count the values the node graph expands to with aliases followed, and
    its depth, without expanding it (each node is sized once)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_MANIFEST_VALUES:
                raise InvalidManifest(
                    f"Manifest {source} expands to more than {MAX_MANIFEST_VALUES} values (through YAML aliases?)"
                )
            if depth[key] > MAX_MANIFEST_DEPTH:
                raise InvalidManifest(f"Manifest {source} nests values more than {MAX_MANIFEST_DEPTH} deep")
            continue
        if key in size:
            continue
        if key in on_path:
            raise InvalidManifest(f"Manifest {source} has a value that contains itself (a recursive YAML alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
