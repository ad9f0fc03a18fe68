"""The app manifest's schema: `AppSpec` (one application as a push asks for
it), `Manifest`, their limits, and the pure rules every reader shares (the
app-name rule, sizes like ``256M``, the default route). Reading a manifest
file is `actors.manifest`'s job; combining it with `cf push` flags is the
CLI's (`actors.cli.push_spec`).
"""

from __future__ import annotations

import re
import reprlib
import unicodedata
from dataclasses import dataclass
from typing import Any

from protocol.errors import InvalidAppName, InvalidManifest
from protocol.states import HealthCheckType

__all__ = [
    "DEFAULT_DISK_MB",
    "DEFAULT_DOMAIN",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_INSTANCES",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_STACK",
    "DEFAULT_TIMEOUT_S",
    "MAX_DB_INT",
    "MAX_HEALTH_CHECK_TIMEOUT_S",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "MAX_MANIFEST_VALUES",
    "AppSpec",
    "Manifest",
    "default_route",
    "parse_size_mb",
    "show",
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

_SIZE = re.compile(r"(\d+)(M|MB|G|GB|T|TB)", re.IGNORECASE)
_UNIT_MB = {"M": 1, "MB": 1, "G": 1024, "GB": 1024, "T": 1024 * 1024, "TB": 1024 * 1024}


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
    # For each app, the AppSpec fields its entry set (what an update changes),
    # and the entry as written (keys with hyphens; what `cf push` shows back).
    explicit: tuple[frozenset[str], ...] = ()
    entries: tuple[Any, ...] = ()

    def app(self, name: str) -> AppSpec:
        for spec in self.apps:
            if spec.name == name:
                return spec
        raise InvalidManifest(f"Could not find app named '{name}' in manifest")


# The Unicode categories Onigmo's [[:print:]] leaves out.
_NOT_PRINTABLE = frozenset({"Cc", "Cs", "Cn", "Zl", "Zp"})
# A host Cloud Controller makes of an app's name: word characters and '-'.
_HOST = re.compile(r"[\w-]+", re.ASCII)


def validate_app_name(name: object) -> str:
    """Return `name` if Cloud Controller takes it: 1 to 255 printable
    characters (the default route's host is made of it, `default_route`)."""
    if name is not None and not isinstance(name, str):
        raise InvalidAppName("App name must be a string")
    if not name:
        raise InvalidAppName("App name must not be empty")
    if len(name) > 255:
        raise InvalidAppName(f"App name '{name[:60]}...' is longer than 255 characters")
    if any(unicodedata.category(c) in _NOT_PRINTABLE for c in name):
        # Cloud Controller's rule ([[:print:]]): letters, marks, numbers,
        # punctuation, symbols, spaces of any script and format characters;
        # not control characters, line or paragraph separators, surrogates.
        raise InvalidAppName(f"App name {name!r} is invalid: it may hold printable characters only")
    return name


def default_route(name: str, domain: str = DEFAULT_DOMAIN) -> str:
    """The route Cloud Controller maps when a push gives none: the app's
    name as the host, as it is. A name that cannot be a host fails the push
    in CC's words (cf v8 leaves this to CC, which does not rewrite it)."""
    prefix = "Failed to create default route from app name:"
    if len(name) > 63:
        raise InvalidManifest(f"{prefix} Host cannot exceed 63 characters")
    if not _HOST.fullmatch(name):
        raise InvalidManifest(f'{prefix} Host must be either "*" or contain only alphanumeric characters, "_", or "-"')
    return f"{name.lower()}.{domain}"


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 4
_REPR.maxlevel = 2


def show(value: object) -> str:
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
                raise ValueError(f"must be at most {MAX_DB_INT} MB (got {show(value)})")
            if mb > 0:
                return mb
    raise ValueError(f"must be an integer with a unit of measurement like M, MB, G, or GB (got {show(value)})")
