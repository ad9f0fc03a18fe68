"""Reading app manifests: `manifest.yml` parsed into `AppSpec`s (the types
and their rules are `protocol.manifest`'s; `cf push` flags over a spec are
`actors.cli.push_spec`'s).

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
routes                         list of ``{route: host.domain[/path]}`` ``NAME.apps.internal`` (by CC)
no-route                       bool: no route at all                  false
random-route                   bool: a generated route                false
=============================  =====================================  ==================

Unknown keys do not fail the push: they come back as warnings on `Manifest`.
Invalid values raise `InvalidManifest` naming the application and the key.

Routes: `AppSpec.routes` are the routes the manifest lists (none: ``()``).
Cloud Controller maps the default route (the name as a host) when none is
listed, and picks a random host (with its own seeded generator) for a
``random-route`` app: parsing stays deterministic.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from protocol.errors import InvalidManifest, PathNotFound
from protocol.manifest import (
    DEFAULT_HTTP_ENDPOINT,
    MAX_DB_INT,
    MAX_HEALTH_CHECK_TIMEOUT_S,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_MANIFEST_VALUES,
    AppSpec,
    Manifest,
    parse_size_mb,
    validate_app_name,
)
from protocol.manifest import show as _show
from protocol.records import freeze
from protocol.states import HealthCheckType

__all__ = [
    "AUTODETECT",
    "ManifestNotYaml",
    "health_check_type",
    "is_int",
    "load_manifest",
    "normalise_buildpacks",
    "parse_manifest",
    "reserved_env_name",
]

_ROUTE = re.compile(r"(\*|[A-Za-z0-9_][A-Za-z0-9_-]*)(\.[A-Za-z0-9][A-Za-z0-9-]*)+(:\d{1,5})?(/\S*)?")
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
        "default-route",
        "processes",
    }
)
# The keys a `processes:` entry of type web may set for the app's web process.
_PROCESS_KEYS = frozenset(
    {
        "type",
        "memory",
        "disk-quota",
        "instances",
        "command",
        "health-check-type",
        "health-check-http-endpoint",
        "timeout",
    }
)
# Manifest key -> the AppSpec field it sets (what a push changes on an existing app).
_FIELD_OF = {
    "memory": "memory_mb",
    "disk-quota": "disk_mb",
    "instances": "instances",
    "buildpacks": "buildpacks",
    "buildpack": "buildpacks",
    "command": "command",
    "stack": "stack",
    "health-check-type": "health_check_type",
    "health-check-http-endpoint": "health_check_http_endpoint",
    "timeout": "timeout_s",
    "env": "env",
    "routes": "routes",
    "no-route": "no_route",
    "random-route": "random_route",
}
_KNOWN_TOP_LEVEL = frozenset({"applications", "version"})
# `default` and `null` ask Cloud Foundry to auto-detect (as on `cf push -b`).
AUTODETECT = frozenset({"default", "null"})


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
    if "version" in doc and (type(doc["version"]) is not int or doc["version"] != 1):
        # Cloud Controller's words: it is CC that refuses it, for cf v8 too.
        raise InvalidManifest("Unsupported manifest schema version. Currently supported versions: [1].")
    warnings: list[str] = [
        f"Manifest {source}: unknown top-level key '{k}' ignored" for k in doc if k not in _KNOWN_TOP_LEVEL
    ]
    apps_raw = doc.get("applications")
    if not isinstance(apps_raw, list) or not apps_raw:
        raise InvalidManifest(f"Manifest {source} must have a non-empty 'applications' list")
    apps: list[AppSpec] = []
    entries: list[Any] = []
    explicit: list[frozenset[str]] = []
    seen: set[str] = set()
    for index, raw in enumerate(apps_raw):
        spec, given = _parse_app(raw, index, base_dir, warnings)
        if spec.name in seen:
            raise InvalidManifest(f"Application '{spec.name}' appears more than once in {source}")
        seen.add(spec.name)
        apps.append(spec)
        explicit.append(given)
        entries.append(freeze({str(k).replace("_", "-"): v for k, v in raw.items()}))
    return Manifest(apps=tuple(apps), warnings=tuple(warnings), explicit=tuple(explicit), entries=tuple(entries))


# --- parsing one application -------------------------------------------------


def _parse_app(raw: object, index: int, base_dir: Any, warnings: list[str]) -> tuple[AppSpec, frozenset[str]]:
    if not isinstance(raw, Mapping):
        raise InvalidManifest(f"Application #{index + 1} must be a mapping of keys to values")
    fields: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InvalidManifest(f"Application #{index + 1}: key {_show(key)} is not a string")
        canon = key.replace("_", "-")
        if canon in spelled:
            raise InvalidManifest(f"Application #{index + 1}: '{spelled[canon]}' and '{key}' are the same key")
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
    if (default_route := fields.get("default-route")) is not None and not isinstance(default_route, bool):
        raise bad("default-route", f"must be true or false, got {_show(default_route)}")
    _merge_web_process(fields, spelled, name, warnings)

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
        if not is_int(instances) or not 0 <= instances <= MAX_DB_INT:
            raise bad("instances", f"must be an integer from 0 to {MAX_DB_INT}, got {_show(instances)}")
        spec["instances"] = instances

    if "buildpack" in fields and "buildpacks" in fields:
        raise InvalidManifest(f"Application '{name}' cannot use the combination of properties: buildpack, buildpacks")
    if "buildpack" in fields:
        warnings.append(
            f"Application '{name}': Deprecation warning: Use of 'buildpack' attribute in manifest "
            "is deprecated in favor of 'buildpacks'."
        )
        legacy = fields["buildpack"]
        if legacy is None:
            spec["buildpacks"] = ()
        elif isinstance(legacy, str) and legacy.strip():
            spec["buildpacks"] = normalise_buildpacks([legacy.strip()], lambda m: bad("buildpack", m))
        else:
            raise bad("buildpack", f"must be a buildpack name, got {_show(legacy)}")
    if (bps := fields.get("buildpacks")) is not None:
        if isinstance(bps, list):
            # `[null]` (YAML's null, not the string) also means auto-detect.
            bps = ["null" if b is None else b for b in bps]
        if not isinstance(bps, list) or not all(isinstance(b, str) and b.strip() for b in bps):
            raise bad("buildpacks", f"must be a list of buildpack names, got {_show(bps)}")
        spec["buildpacks"] = normalise_buildpacks([b.strip() for b in bps], lambda m: bad("buildpacks", m))

    if (command := fields.get("command")) is not None:
        if not isinstance(command, str):
            raise bad("command", f"must be a string, got {_show(command)}")
        spec["command"] = None if command.strip() in AUTODETECT or not command.strip() else command

    if (stack := fields.get("stack")) is not None:
        if not isinstance(stack, str) or not stack.strip():
            raise bad("stack", f"must be a stack name, got {_show(stack)}")
        spec["stack"] = stack.strip()

    hc = HealthCheckType.PORT
    if (hc_raw := fields.get("health-check-type")) is not None:
        parsed = health_check_type(hc_raw) if isinstance(hc_raw, str) else None
        if parsed is None:
            raise bad("health-check-type", f"must be port, process or http, got {_show(hc_raw)}")
        if hc_raw.strip().lower() == "none":
            warnings.append(f"Application '{name}': health-check-type 'none' is deprecated; use 'process'")
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
        if not is_int(timeout) or not 1 <= timeout <= MAX_HEALTH_CHECK_TIMEOUT_S:
            raise bad(
                "timeout", f"must be an integer from 1 to {MAX_HEALTH_CHECK_TIMEOUT_S} seconds, got {_show(timeout)}"
            )
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
            raise InvalidManifest(f"Application '{name}' cannot use the combination of properties: {flag}, routes")
    if spec.get("no_route") and spec.get("random_route"):
        raise InvalidManifest(f"Application '{name}' cannot use the combination of properties: no-route, random-route")
    if routes is not None:
        spec["routes"] = routes  # else none given: Cloud Controller maps the default route

    given = frozenset(_FIELD_OF[k] for k in fields if k in _FIELD_OF)
    return AppSpec(**spec), given


def _merge_web_process(fields: dict[str, Any], spelled: dict[str, str], name: str, warnings: list[str]) -> None:
    """A `processes:` entry of type web sets the app's web process: its keys
    win over the app-level ones (the only process type this platform runs)."""
    processes = fields.pop("processes", None)
    if processes is None:
        return
    if not isinstance(processes, list):
        raise InvalidManifest(f"Application '{name}': processes: must be a list, got {_show(processes)}")
    for entry in processes:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
            raise InvalidManifest(f"Application '{name}': processes: each entry needs a 'type', got {_show(entry)}")
        if entry["type"] != "web":
            warnings.append(f"Application '{name}': process type '{entry['type']}' ignored (only web runs)")
            continue
        for key, value in entry.items():
            canon = str(key).replace("_", "-")
            if canon not in _PROCESS_KEYS:
                warnings.append(f"Application '{name}': unknown process key '{key}' ignored")
            elif canon != "type":
                fields[canon] = value
                spelled[canon] = f"processes.web.{key}"


# --- helpers -----------------------------------------------------------------


def is_int(value: object) -> TypeGuard[int]:
    # YAML `true` is a bool, and bool is an int subclass: refuse it explicitly.
    return isinstance(value, int) and not isinstance(value, bool)


def health_check_type(text: str) -> HealthCheckType | None:
    text = text.strip().lower()
    if text == "none":
        return HealthCheckType.PROCESS
    try:
        return HealthCheckType(text)
    except ValueError:
        return None


def normalise_buildpacks(names: list[str], fail: Callable[[str], Exception]) -> tuple[str, ...]:
    # `fail` builds the error: a manifest and a flag report it differently.
    if len(names) == 1 and names[0].lower() in AUTODETECT:
        return ()
    if any(n.lower() in AUTODETECT for n in names):
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


def reserved_env_name(key: str) -> str | None:
    """Why `key` cannot be set as an app's environment variable, or None."""
    if key == "PORT" or key.startswith(_RESERVED_ENV):
        return "PORT and names starting with VCAP_ or CF_ are reserved by the platform"
    return None


def _check_env_names(env: Mapping[str, str], app: str) -> None:
    for key in env:
        reason = reserved_env_name(key)
        if reason:
            raise InvalidManifest(f"Application '{app}': env: {key}: {reason}")


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


class ManifestNotYaml(InvalidManifest):
    """The manifest's text does not parse as YAML at all."""


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
        raise ManifestNotYaml(f"Manifest {source} is not valid YAML: {_one_line(exc)}") from None
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
