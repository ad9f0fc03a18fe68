"""The Go buildpack: a go.mod, built to ./bin/<module>."""

from __future__ import annotations

import re
from pathlib import Path

from actors.cell.buildpacks.base import (
    INDENT,
    Buildpack,
    Out,
    read_text,
    stub,
)
from actors.cell.buildpacks.semver import version_tuple
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.errors import BuildpackCompileFailed

# --- go -------------------------------------------------------------------------------


class GoBuildpack(Buildpack):
    name = "go_buildpack"
    short_name = "go"
    version = BUILDPACK_VERSIONS["go_buildpack"]
    language = "Go"
    gos = {"1.21": "1.21.13", "1.22": "1.22.7", "1.23": "1.23.1"}
    default_go = "1.22.7"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "go.mod").is_file()

    def _gomod(self, app_dir: Path) -> tuple[str | None, str | None, list[tuple[str, str]]]:
        module: str | None = None
        go: str | None = None
        requires: list[tuple[str, str]] = []
        in_require = False
        for line in read_text(app_dir / "go.mod").splitlines():
            code = line.split("//", 1)[0].strip()
            if in_require:
                if code == ")":
                    in_require = False
                elif code:
                    parts = code.split()
                    if len(parts) >= 2:
                        requires.append((parts[0], parts[1]))
                continue
            if m := re.fullmatch(r'module\s+"?([^\s"]+)"?', code):
                module = m[1]
            elif m := re.fullmatch(r"go\s+(\d+\.\d+(?:\.\d+)?)", code):
                go = m[1]
            elif code == "require (":
                in_require = True
            elif m := re.fullmatch(r"require\s+(\S+)\s+(\S+)", code):
                requires.append((m[1], m[2]))
        return module, go, requires

    def _go_version(self, requested: str | None) -> tuple[str, str | None]:
        if not requested:
            return self.default_go, None
        line = ".".join(requested.split(".")[:2])
        if line in self.gos:
            return self.gos[line], None
        oldest = min(self.gos, key=lambda k: version_tuple(k))
        if version_tuple(line) < version_tuple(oldest):
            # go.mod's `go` line is a minimum: a newer toolchain builds it.
            chosen = self.gos[oldest]
            return chosen, f"go {requested} is not available; using {chosen}"
        raise BuildpackCompileFailed(
            f"Unable to install go: no match found for {requested} in [{' '.join(self.gos.values())}]"
        )

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        _, requested, _ = self._gomod(app_dir)
        go, warning = self._go_version(requested)
        out(f"-----> Installing go {go}")
        if warning:
            out(f"{INDENT}**WARNING** {warning}")
        stub(deps_dir / "go" / "bin" / "go", f"go {go}")
        self._config(deps_dir, go=go)

    def _binary_name(self, app_dir: Path) -> tuple[str, str, list[tuple[str, str]]]:
        module, _, requires = self._gomod(app_dir)
        if not module:
            raise BuildpackCompileFailed("go.mod has no 'module' line: cannot determine the import path")
        parts = module.rstrip("/").split("/")
        # A major-version suffix (example.com/foo/v2) is not the binary's name.
        name = parts[-2] if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]) else parts[-1]
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._~-]*", name):
            raise BuildpackCompileFailed(f"go.mod module path {module!r} does not end in a usable name")
        return module, name, requires

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        module, name, requires = self._binary_name(app_dir)
        for dep, version in requires:
            out(f"{INDENT}go: downloading {dep} {version}")
        out(f"-----> Running: go install -tags cloudfoundry -buildmode pie {module}")
        stub(app_dir / "bin" / name, f"{module}, compiled by go")

    def release(self, app_dir: Path) -> dict[str, str]:
        _, name, _ = self._binary_name(app_dir)
        return {"web": f"./bin/{name}"}
