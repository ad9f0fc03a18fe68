"""The Node.js buildpack: a package.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from actors.cell.buildpacks.base import (
    INDENT,
    Buildpack,
    Out,
    pseudo_version,
    read_text,
    stub,
    write,
)
from actors.cell.buildpacks.semver import exact_version, semver_pick
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.errors import BuildpackCompileFailed

# --- nodejs -------------------------------------------------------------------------


class NodejsBuildpack(Buildpack):
    name = "nodejs_buildpack"
    short_name = "nodejs"
    version = BUILDPACK_VERSIONS["nodejs_buildpack"]
    language = "Nodejs"
    nodes = ("18.20.4", "20.17.0", "22.9.0")
    default_node = "20.17.0"
    npm = "10.8.2"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "package.json").is_file()

    def _package(self, app_dir: Path) -> dict[str, object]:
        try:
            doc = json.loads(read_text(app_dir / "package.json"))
        except json.JSONDecodeError as exc:
            raise BuildpackCompileFailed(f"Unable to parse package.json: {exc}") from None
        if not isinstance(doc, dict):
            raise BuildpackCompileFailed("Unable to parse package.json: expected a JSON object")
        for key in ("dependencies", "scripts", "engines"):
            value = doc.get(key)
            if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                raise BuildpackCompileFailed(f"Unable to parse package.json: '{key}' must map names to strings")
        return doc

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        doc = self._package(app_dir)
        engines = doc.get("engines") or {}
        assert isinstance(engines, dict)
        wanted = engines.get("node")
        out("-----> Installing binaries")
        out(f"{INDENT}engines.node (package.json): {wanted or 'unspecified'}")
        out(f"{INDENT}engines.npm (package.json): {engines.get('npm') or 'unspecified (use default)'}")
        node = self.default_node if not wanted else semver_pick(wanted, self.nodes)
        if node is None:
            raise BuildpackCompileFailed(
                f"Unable to install node: no match found for {wanted} in [{' '.join(self.nodes)}]"
            )
        out(f"-----> Installing node {node}")
        out(f"{INDENT}Using default npm version: {self.npm}")
        stub(deps_dir / "node" / "bin" / "node", f"node {node}")
        stub(deps_dir / "node" / "bin" / "npm", f"npm {self.npm}")
        self._config(deps_dir, node=node, npm=self.npm)

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        doc = self._package(app_dir)
        deps = doc.get("dependencies") or {}
        assert isinstance(deps, dict)
        out("-----> Building dependencies")
        if (app_dir / "node_modules").is_dir():
            out(f"{INDENT}Prebuild detected (node_modules already exists)")
            out(f"{INDENT}Rebuilding any native modules")
            return
        lock = " + package-lock.json" if (app_dir / "package-lock.json").is_file() else ""
        out(f"{INDENT}Installing node modules (package.json{lock})")
        modules = app_dir / "node_modules"
        for dep, spec in sorted(deps.items()):
            if not re.fullmatch(r"(@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*", dep, re.I):
                raise BuildpackCompileFailed(f"Invalid dependency name in package.json: {dep!r}")
            version = exact_version(spec) or pseudo_version(dep)
            meta = json.dumps({"name": dep, "version": version, "main": "index.js"}, indent=2, sort_keys=True)
            write(modules / dep / "package.json", meta + "\n")
            write(modules / dep / "index.js", f"// {dep}@{version} (stub)\nmodule.exports = {{}};\n")
        if deps:
            noun = "package" if len(deps) == 1 else "packages"
            out(f"{INDENT}added {len(deps)} {noun}, and audited {len(deps) + 1} packages")
        else:
            out(f"{INDENT}up to date, audited 1 package")

    def release(self, app_dir: Path) -> dict[str, str]:
        doc = self._package(app_dir)
        scripts = doc.get("scripts") or {}
        assert isinstance(scripts, dict)
        main = doc.get("main")
        if scripts.get("start"):
            return {"web": "npm start"}
        if isinstance(main, str) and main.strip():
            return {"web": f"node {main.strip()}"}
        if (app_dir / "server.js").is_file():
            return {"web": "node server.js"}
        return {"web": "npm start"}
