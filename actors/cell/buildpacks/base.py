"""What every buildpack shares: the phases of Cloud Foundry's buildpack
lifecycle (`Buildpack`) and the small file helpers they use."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from protocol.errors import BuildpackCompileFailed

__all__ = [
    "INDENT",
    "MAX_CONFIG_FILE_BYTES",
    "Buildpack",
    "Out",
    "pick_line",
    "pseudo_version",
    "read_text",
    "stub",
    "write",
    "yaml_document",
]

Out = Callable[[str], None]

# Files a buildpack reads to decide what to install are small; a bigger one
# is a mistake, and reading it whole would let one app exhaust a cell.
MAX_CONFIG_FILE_BYTES = 1024 * 1024
INDENT = "       "
# Keys YAML reads as plain strings: no booleans or nulls in YAML 1.1's sense.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


# --- helpers -------------------------------------------------------------------


def read_text(path: Path, what: str | None = None) -> str:
    # `path` is a real Path or a build tree's `TreePath`: both answer these.
    what = what or path.name
    try:
        if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
            raise BuildpackCompileFailed(f"{what} is larger than {MAX_CONFIG_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildpackCompileFailed(f"{what} is not valid UTF-8") from None
    except OSError as exc:
        raise BuildpackCompileFailed(f"Cannot read {what}: {exc.strerror}") from None


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def yaml_document(doc: Mapping[str, object]) -> str:
    """A mapping of strings (and mappings of strings) as block YAML, keys
    sorted, every value double-quoted (JSON's quoting is YAML's): what
    `yaml.safe_dump(doc, sort_keys=True)` says, at a fraction of its cost."""
    lines: list[str] = []

    def name(key: str) -> str:
        plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
        return key if plain else json.dumps(key)

    def emit(mapping: Mapping[str, object], indent: str) -> None:
        for key in sorted(mapping):
            value = mapping[key]
            if isinstance(value, Mapping):
                lines.append(f"{indent}{name(key)}:" + ("" if value else " {}"))
                emit(value, indent + "  ")
            else:
                lines.append(f"{indent}{name(key)}: {json.dumps(str(value))}")

    emit(doc, "")
    return "\n".join(lines) + "\n"


def stub(path: Path, what: str) -> None:
    """An 'installed' executable: a script that says what it stands for."""
    write(path, f"#!/bin/sh\n# {what}, simulated by minifoundry: nothing is installed.\nexit 0\n", 0o755)


def pseudo_version(name: str) -> str:
    # Unpinned dependencies get a stable made-up version: the output should
    # look like an install log and be the same on every staging.
    h = hashlib.sha256(name.lower().encode()).digest()
    return f"{1 + h[0] % 5}.{h[1] % 20}.{h[2] % 10}"


def pick_line(requested: str | None, available: Mapping[str, str], default: str, what: str) -> tuple[str, str | None]:
    """(version to install, warning or None) for a requested ``X.Y[.Z|.x]``."""
    if not requested:
        return default, None
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+|x|\*))?", requested.strip())
    if not m or f"{m[1]}.{m[2]}" not in available:
        raise BuildpackCompileFailed(
            f"Unable to install {what}: no match found for {requested.strip()} in [{' '.join(available.values())}]"
        )
    chosen = available[f"{m[1]}.{m[2]}"]
    if m[3] and m[3].isdigit() and chosen != f"{m[1]}.{m[2]}.{m[3]}":
        return chosen, f"{what} {requested.strip()} is not available; using {chosen}"
    return chosen, None


# --- the buildpack interface ------------------------------------------------------


class Buildpack:
    """One buildpack. Instances are stateless and safe to share between threads."""

    name = ""  # e.g. python_buildpack
    short_name = ""  # e.g. python: the detect output, and what `cf app` shows
    version = ""
    language = ""  # e.g. Python, as in "-----> Python Buildpack version ..."
    # False for buildpacks that can only run last (no supply phase in CF).
    supports_supply = True

    @property
    def detect_output(self) -> str:
        return self.short_name

    def detect(self, app_dir: Path) -> bool:
        raise NotImplementedError

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        self._config(deps_dir)

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        pass

    def release(self, app_dir: Path) -> dict[str, str]:
        return {}

    def _header(self, out: Out) -> None:
        out(f"-----> {self.language} Buildpack version {self.version}")

    def _config(self, deps_dir: Path, **config: str) -> None:
        doc = {"name": self.short_name, "version": self.version, "config": dict(config)}
        write(deps_dir / "config.yml", yaml_document(doc))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"
