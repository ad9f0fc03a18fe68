"""Simulated buildpacks, and staging: app directory in, droplet out.

The buildpacks work on real files in a staging directory and print what real
Cloud Foundry buildpacks print, but install nothing real: an "installed"
interpreter is a small text stub and each "installed" dependency a package
directory with a stub module. Everything they write is a pure function of the
app's files, so staging the same app twice gives the same droplet.

Each `Buildpack` has the phases of CF's buildpack lifecycle:

* ``detect(app_dir)`` — does this buildpack recognise the app?
* ``supply(app_dir, deps_dir, out)`` — install dependencies into
  ``deps_dir`` (this buildpack's own ``deps/<index>``; earlier buildpacks'
  output is in its siblings). Must not change ``app_dir``.
* ``finalize(app_dir, deps_dir, out)`` — the last buildpack only: may change
  ``app_dir`` (node_modules, compiled binaries, boot scripts).
* ``release(app_dir)`` — process types, e.g. ``{"web": "python app.py"}``.

`out` takes one output line at a time. Failures raise
`BuildpackCompileFailed` (supply/finalize) or `BuildpackReleaseFailed`.

Detection, in CF's default priority order (first match wins):

============  ====================================================  ==========================================
buildpack     detects                                               default start command
============  ====================================================  ==========================================
staticfile    ``Staticfile`` or ``index.html`` at the top           ``$HOME/boot.sh``
java          a top-level ``*.jar``/``*.war``, or an exploded jar    ``java -jar <first jar>``, Tomcat for a
              (``META-INF/MANIFEST.MF``) or war (``WEB-INF/``)      war, ``java -cp $PWD/. <Main-Class>``
ruby          ``Gemfile``                                           ``bundle exec rackup config.ru -p $PORT``
                                                                    (with config.ru), ``bin/rails server ...``
                                                                    (Rails), else none
nodejs        ``package.json``                                      ``npm start`` if scripts.start, else
                                                                    ``node <main>``, else ``node server.js``
                                                                    if present, else ``npm start``
go            ``go.mod``                                            ``./bin/<module basename>``
python        ``requirements.txt``, ``Pipfile``, ``pyproject.toml``  ``python app.py``, else ``python main.py``,
                                                                    else the first top-level ``*.py`` (by name)
                                                                    with ``if __name__ == "__main__"``, else none
binary        never (name it with ``-b binary_buildpack``)          none: a command is required
============  ====================================================  ==========================================

A ``Procfile`` (``type: command`` lines) overrides the buildpack's process
types; a ``-c`` command overrides ``web``. When no ``web`` command results,
staging fails with `BuildpackReleaseFailed` (real CF would stage and then fail
to start; failing early tells the user sooner, at the same cause).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from actors.cell.droplet import StagingInfo, build_droplet
from protocol.errors import (
    BuildpackCompileFailed,
    BuildpackReleaseFailed,
    NoAppDetectedError,
    PlatformError,
    StagingError,
    UnknownBuildpack,
    UnsafePath,
)

__all__ = [
    "BUILDPACKS",
    "BinaryBuildpack",
    "Buildpack",
    "GoBuildpack",
    "JavaBuildpack",
    "NodejsBuildpack",
    "Out",
    "PythonBuildpack",
    "RubyBuildpack",
    "StagingResult",
    "StaticfileBuildpack",
    "detect_buildpack",
    "find_buildpack",
    "parse_procfile",
    "stage",
]

Out = Callable[[str], None]

# Files a buildpack reads to decide what to install are small; a bigger one
# is a mistake, and reading it whole would let one app exhaust a cell.
MAX_CONFIG_FILE_BYTES = 1024 * 1024
_INDENT = "       "


# --- helpers -------------------------------------------------------------------


def _read_text(path: Path, what: str | None = None) -> str:
    what = what or path.name
    try:
        if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
            raise BuildpackCompileFailed(f"{what} is larger than {MAX_CONFIG_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildpackCompileFailed(f"{what} is not valid UTF-8") from None
    except OSError as exc:
        raise BuildpackCompileFailed(f"Cannot read {what}: {exc.strerror}") from None


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)


def _stub(path: Path, what: str) -> None:
    """An 'installed' executable: a script that says what it stands for."""
    _write(path, f"#!/bin/sh\n# {what}, simulated by minifoundry: nothing is installed.\nexit 0\n", 0o755)


def _pseudo_version(name: str) -> str:
    # Unpinned dependencies get a stable made-up version: the output should
    # look like an install log and be the same on every staging.
    h = hashlib.sha256(name.lower().encode()).digest()
    return f"{1 + h[0] % 5}.{h[1] % 20}.{h[2] % 10}"


def _pick_line(
    requested: str | None, available: Mapping[str, str], default: str, what: str
) -> tuple[str, str | None]:
    """(version to install, warning or None) for a requested ``X.Y[.Z|.x]``."""
    if not requested:
        return default, None
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+|x|\*))?", requested.strip())
    if not m or f"{m[1]}.{m[2]}" not in available:
        raise BuildpackCompileFailed(
            f"Unable to install {what}: no match found for {requested.strip()} in "
            f"[{' '.join(available.values())}]"
        )
    chosen = available[f"{m[1]}.{m[2]}"]
    if m[3] and m[3].isdigit() and chosen != f"{m[1]}.{m[2]}.{m[3]}":
        return chosen, f"{what} {requested.strip()} is not available; using {chosen}"
    return chosen, None


def parse_procfile(text: str) -> dict[str, str]:
    """``type: command`` lines → process types. `BuildpackReleaseFailed` if malformed."""
    types: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([A-Za-z0-9_-]+)\s*:\s*(\S.*?)\s*", line)
        if not m:
            raise BuildpackReleaseFailed(
                f"Failed to read command from Procfile: line {number} is not 'type: command'"
            )
        types[m[1]] = m[2]
    return types


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
        _write(deps_dir / "config.yml", yaml.safe_dump(doc, sort_keys=True))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"


# --- staticfile -------------------------------------------------------------------


class StaticfileBuildpack(Buildpack):
    name = "staticfile_buildpack"
    short_name = "staticfile"
    version = "1.6.14"
    language = "Staticfile"
    nginx = "1.25.5"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "Staticfile").is_file() or (app_dir / "index.html").is_file()

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        out("-----> Installing nginx")
        out(f"{_INDENT}Using nginx version {self.nginx}")
        _stub(deps_dir / "nginx" / "sbin" / "nginx", f"nginx {self.nginx}")
        self._config(deps_dir, nginx=self.nginx)

    def _options(self, app_dir: Path) -> dict[str, object]:
        path = app_dir / "Staticfile"
        if not path.is_file():
            return {}
        try:
            doc = yaml.safe_load(_read_text(path))
        except yaml.YAMLError as exc:
            raise BuildpackCompileFailed(f"Could not parse Staticfile: {' '.join(str(exc).split())}") from None
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise BuildpackCompileFailed("Could not parse Staticfile: expected 'key: value' lines")
        return doc

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        options = self._options(app_dir)
        root_name = str(options.get("root", "") or "").strip().strip("/")
        root = (app_dir / root_name).resolve() if root_name else app_dir.resolve()
        app_real = app_dir.resolve()
        outside = root != app_real and app_real not in root.parents
        if outside or not root.is_dir():
            raise BuildpackCompileFailed(
                f"the application Staticfile specifies a root directory {root_name} that does not exist"
            )
        rel = root.relative_to(app_real).as_posix()
        shown = "/tmp/app" if rel == "." else f"/tmp/app/{rel}"
        out(f"-----> Root folder {shown}")
        if rel == ".":
            out("-----> Copying project files into public")
        out("-----> Configuring nginx")
        if _truthy(options.get("pushstate")):
            out("-----> Enabling pushstate")
        if _truthy(options.get("directory")) or str(options.get("directory")) == "visible":
            out("-----> Enabling directory index for folders without index.html")
        if _truthy(options.get("host_dot_files")):
            out("-----> Enabling hosting of dotfiles")
        if not (root / "index.html").is_file():
            out(f"{_INDENT}**WARNING** No index.html in the root folder: '/' will answer 404")
        served = "$HOME" if rel == "." else f"$HOME/{rel}"
        _write(
            app_dir / "nginx" / "conf" / "nginx.conf",
            "worker_processes 1;\n"
            "daemon off;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  server {\n"
            "    listen <%= ENV[\"PORT\"] %>;\n"
            f"    root {served};\n"
            "    index index.html index.htm;\n"
            "  }\n"
            "}\n",
        )
        _write(
            app_dir / "boot.sh",
            "#!/bin/sh\n"
            "# Starts nginx on $PORT (simulated: instances do not execute it).\n"
            'exec "$DEPS_DIR"/*/nginx/sbin/nginx -p "$HOME/nginx" -c "$HOME/nginx/conf/nginx.conf"\n',
            0o755,
        )

    def release(self, app_dir: Path) -> dict[str, str]:
        return {"web": "$HOME/boot.sh"}


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "enabled"))


# --- java -------------------------------------------------------------------------


class JavaBuildpack(Buildpack):
    name = "java_buildpack"
    short_name = "java"
    version = "4.69.0"
    language = "Java"
    supports_supply = False
    jre = "17.0.12_7"
    tomcat = "10.1.28"

    def _archives(self, app_dir: Path, suffix: str) -> list[Path]:
        return sorted(p for p in app_dir.iterdir() if p.suffix.lower() == suffix and p.is_file())

    def detect(self, app_dir: Path) -> bool:
        return bool(
            self._archives(app_dir, ".jar")
            or self._archives(app_dir, ".war")
            or (app_dir / "META-INF" / "MANIFEST.MF").is_file()
            or (app_dir / "WEB-INF").is_dir()
        )

    def _header(self, out: Out) -> None:
        out(f"-----> Java Buildpack v{self.version} | https://github.com/cloudfoundry/java-buildpack")

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        for archive in self._archives(app_dir, ".jar") + self._archives(app_dir, ".war"):
            if not zipfile.is_zipfile(archive):
                raise BuildpackCompileFailed(f"{archive.name} is not a valid {archive.suffix[1:].upper()} file")
        self._config(deps_dir, jre=self.jre)

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        base = "https://java-buildpack.cloudfoundry.org"
        out(f"-----> Downloading Jvmkill Agent 1.17.0_RELEASE from {base}/jvmkill/jammy/x86_64/")
        out(f"-----> Downloading Open Jdk JRE {self.jre} from {base}/openjdk/jammy/x86_64/")
        out(f"{_INDENT}Expanding Open Jdk JRE to .java-buildpack/open_jdk_jre")
        out(f"-----> Downloading Open JDK Like Memory Calculator 3.13.0_RELEASE from {base}/memory-calculator/")
        jbp = app_dir / ".java-buildpack"
        _stub(jbp / "open_jdk_jre" / "bin" / "java", f"OpenJDK JRE {self.jre}")
        if self._uses_tomcat(app_dir):
            out(f"-----> Downloading Tomcat Instance {self.tomcat} from {base}/tomcat/tomcat-{self.tomcat}.tar.gz")
            out(f"{_INDENT}Expanding Tomcat Instance to .java-buildpack/tomcat")
            _stub(jbp / "tomcat" / "bin" / "catalina.sh", f"Apache Tomcat {self.tomcat}")

    def _uses_tomcat(self, app_dir: Path) -> bool:
        return not self._archives(app_dir, ".jar") and (
            bool(self._archives(app_dir, ".war")) or (app_dir / "WEB-INF").is_dir()
        )

    def _main_class(self, app_dir: Path) -> str | None:
        manifest = app_dir / "META-INF" / "MANIFEST.MF"
        if not manifest.is_file():
            return None
        m = re.search(r"^Main-Class:\s*(\S+)\s*$", _read_text(manifest, "META-INF/MANIFEST.MF"), re.M)
        return m[1] if m else None

    def release(self, app_dir: Path) -> dict[str, str]:
        jars = self._archives(app_dir, ".jar")
        if jars:
            return {"web": f"java -jar {jars[0].name}"}
        if self._uses_tomcat(app_dir):
            return {"web": "$PWD/.java-buildpack/tomcat/bin/catalina.sh run"}
        main = self._main_class(app_dir)
        return {"web": f"java -cp $PWD/. {main}"} if main else {}


# --- ruby -------------------------------------------------------------------------


class RubyBuildpack(Buildpack):
    name = "ruby_buildpack"
    short_name = "ruby"
    version = "1.10.16"
    language = "Ruby"
    rubies = {"3.1": "3.1.6", "3.2": "3.2.5", "3.3": "3.3.5"}
    default_ruby = "3.3.5"
    bundler = "2.5.18"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "Gemfile").is_file()

    def _gemfile(self, app_dir: Path) -> tuple[str | None, list[tuple[str, str | None]]]:
        text = _read_text(app_dir / "Gemfile")
        ruby: str | None = None
        gems: list[tuple[str, str | None]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            code = line.split("#", 1)[0].strip()
            if re.match(r"ruby[\s(]", code):
                m = re.search(r"(\d+\.\d+)", code)
                if not m:
                    raise BuildpackCompileFailed(f"Gemfile line {number}: cannot read the ruby version")
                ruby = m[1]
            elif re.match(r"gem[\s(]", code):
                m = re.match(r"""gem[\s(]+(['"])([A-Za-z0-9][A-Za-z0-9._-]*)\1(?:\s*,\s*(['"])([^'"]*)\3)?""", code)
                if not m:
                    raise BuildpackCompileFailed(f"Gemfile line {number}: cannot parse gem declaration {code!r}")
                gems.append((m[2], m[4]))
        if ruby is None and (app_dir / ".ruby-version").is_file():
            ruby = _read_text(app_dir / ".ruby-version").strip().removeprefix("ruby-") or None
        return ruby, gems

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        out("-----> Supplying ruby")
        requested, gems = self._gemfile(app_dir)
        if requested:
            requested = ".".join(requested.split(".")[:2])
        ruby, warning = _pick_line(requested, self.rubies, self.default_ruby, "ruby")
        out(f"-----> Installing bundler {self.bundler}")
        out(f"-----> Installing ruby {ruby}")
        if warning:
            out(f"{_INDENT}**WARNING** {warning}")
        _stub(deps_dir / "ruby" / "bin" / "ruby", f"ruby {ruby}")
        _stub(deps_dir / "ruby" / "bin" / "bundle", f"bundler {self.bundler}")
        out(f"-----> Installing dependencies using bundler {self.bundler}")
        lock = " --deployment" if (app_dir / "Gemfile.lock").is_file() else ""
        out(f"{_INDENT}Running: bundle install --without development:test --jobs=4 --retry=4{lock}")
        out(f"{_INDENT}Fetching gem metadata from https://rubygems.org/")
        gem_root = deps_dir / "vendor_bundle" / "ruby" / f"{ruby.rsplit('.', 1)[0]}.0" / "gems"
        for gem, constraint in gems:
            version = _exact_version(constraint) or _pseudo_version(gem)
            out(f"{_INDENT}Installing {gem} {version}")
            _write(gem_root / f"{gem}-{version}" / "lib" / f"{gem}.rb", f"# {gem} {version} (stub)\n")
        out(f"{_INDENT}Bundle complete! {len(gems)} Gemfile dependencies, {len(gems)} gems now installed.")
        self._config(deps_dir, ruby=ruby, bundler=self.bundler)

    def release(self, app_dir: Path) -> dict[str, str]:
        if (app_dir / "config" / "application.rb").is_file() and (app_dir / "config.ru").is_file():
            return {"web": "bin/rails server -b 0.0.0.0 -p $PORT -e $RAILS_ENV"}
        if (app_dir / "config.ru").is_file():
            return {"web": "bundle exec rackup config.ru -p $PORT"}
        return {}


def _exact_version(constraint: str | None) -> str | None:
    if not constraint:
        return None
    m = re.fullmatch(r"\s*(?:==?|\^|~>?|v)?\s*(\d+(?:\.\d+){0,3}[A-Za-z0-9.+-]*)\s*", constraint)
    return m[1] if m else None


# --- nodejs -------------------------------------------------------------------------


class NodejsBuildpack(Buildpack):
    name = "nodejs_buildpack"
    short_name = "nodejs"
    version = "1.8.30"
    language = "Nodejs"
    nodes = ("18.20.4", "20.17.0", "22.9.0")
    default_node = "20.17.0"
    npm = "10.8.2"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "package.json").is_file()

    def _package(self, app_dir: Path) -> dict[str, object]:
        try:
            doc = json.loads(_read_text(app_dir / "package.json"))
        except json.JSONDecodeError as exc:
            raise BuildpackCompileFailed(f"Unable to parse package.json: {exc}") from None
        if not isinstance(doc, dict):
            raise BuildpackCompileFailed("Unable to parse package.json: expected a JSON object")
        for key in ("dependencies", "scripts", "engines"):
            value = doc.get(key)
            if value is not None and not (
                isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
            ):
                raise BuildpackCompileFailed(f"Unable to parse package.json: '{key}' must map names to strings")
        return doc

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        doc = self._package(app_dir)
        engines = doc.get("engines") or {}
        assert isinstance(engines, dict)
        wanted = engines.get("node")
        out("-----> Installing binaries")
        out(f"{_INDENT}engines.node (package.json): {wanted or 'unspecified'}")
        out(f"{_INDENT}engines.npm (package.json): {engines.get('npm') or 'unspecified (use default)'}")
        node = self.default_node if not wanted else _semver_pick(wanted, self.nodes)
        if node is None:
            raise BuildpackCompileFailed(
                f"Unable to install node: no match found for {wanted} in [{' '.join(self.nodes)}]"
            )
        out(f"-----> Installing node {node}")
        out(f"{_INDENT}Using default npm version: {self.npm}")
        _stub(deps_dir / "node" / "bin" / "node", f"node {node}")
        _stub(deps_dir / "node" / "bin" / "npm", f"npm {self.npm}")
        self._config(deps_dir, node=node, npm=self.npm)

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        doc = self._package(app_dir)
        deps = doc.get("dependencies") or {}
        assert isinstance(deps, dict)
        out("-----> Building dependencies")
        if (app_dir / "node_modules").is_dir():
            out(f"{_INDENT}Prebuild detected (node_modules already exists)")
            out(f"{_INDENT}Rebuilding any native modules")
            return
        lock = " + package-lock.json" if (app_dir / "package-lock.json").is_file() else ""
        out(f"{_INDENT}Installing node modules (package.json{lock})")
        modules = app_dir / "node_modules"
        for dep, spec in sorted(deps.items()):
            if not re.fullmatch(r"(@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*", dep, re.I):
                raise BuildpackCompileFailed(f"Invalid dependency name in package.json: {dep!r}")
            version = _exact_version(spec) or _pseudo_version(dep)
            meta = json.dumps({"name": dep, "version": version, "main": "index.js"}, indent=2, sort_keys=True)
            _write(modules / dep / "package.json", meta + "\n")
            _write(modules / dep / "index.js", f"// {dep}@{version} (stub)\nmodule.exports = {{}};\n")
        if deps:
            noun = "package" if len(deps) == 1 else "packages"
            out(f"{_INDENT}added {len(deps)} {noun}, and audited {len(deps) + 1} packages")
        else:
            out(f"{_INDENT}up to date, audited 1 package")

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


def _semver_pick(spec: str, versions: Sequence[str]) -> str | None:
    """The highest of `versions` satisfying an npm-style range (a useful subset:
    ``||``, hyphen ranges, ``^ ~ >= > <= < =``, ``x``/``*`` wildcards)."""
    for version in sorted(versions, key=_vtuple, reverse=True):
        if any(_satisfies(version, alt.strip()) for alt in spec.split("||")):
            return version
    return None


def _vtuple(version: str) -> tuple[int, int, int]:
    parts = [int(p) for p in version.split(".")]
    return (parts + [0, 0, 0])[0], (parts + [0, 0, 0])[1], (parts + [0, 0, 0])[2]


def _satisfies(version: str, alternative: str) -> bool:
    v = _vtuple(version)
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alternative)
    if hyphen:
        alternative = f">={hyphen[1]} <={hyphen[2]}"
    if not alternative or alternative in ("*", "x", "X", "latest"):
        return True
    comparator = r"(>=|<=|>|<|=|\^|~)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+){0,2})"
    if not re.fullmatch(rf"(?:\s*{comparator}\s*)+", alternative):
        return False  # e.g. "lts/*": not a range this buildpack understands
    tokens = re.findall(comparator, alternative)
    for op, partial in tokens:
        parts = [p for p in partial.split(".") if p not in ("x", "X", "*")]
        nums = tuple(int(p) for p in parts)
        low = (nums + (0, 0, 0))[:3]
        if op in ("", "="):
            if v[: len(nums)] != nums:
                return False
        elif op == "^":
            if v[0] != low[0] or v < low:
                return False
        elif op == "~":
            keep = 2 if len(nums) >= 2 else 1
            if v[:keep] != nums[:keep] or v < low:
                return False
        elif op == ">=" and v < low:
            return False
        elif op == ">" and (v <= low if len(nums) == 3 else v[: len(nums)] <= nums):
            return False
        elif op == "<" and v >= low:
            return False
        elif op == "<=" and (v > low if len(nums) == 3 else v[: len(nums)] > nums):
            return False
    return True


# --- go -------------------------------------------------------------------------------


class GoBuildpack(Buildpack):
    name = "go_buildpack"
    short_name = "go"
    version = "1.10.22"
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
        for line in _read_text(app_dir / "go.mod").splitlines():
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
        oldest = min(self.gos, key=lambda k: _vtuple(k))
        if _vtuple(line) < _vtuple(oldest):
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
            out(f"{_INDENT}**WARNING** {warning}")
        _stub(deps_dir / "go" / "bin" / "go", f"go {go}")
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
            out(f"{_INDENT}go: downloading {dep} {version}")
        out(f"-----> Running: go install -tags cloudfoundry -buildmode pie {module}")
        _stub(app_dir / "bin" / name, f"{module}, compiled by go")

    def release(self, app_dir: Path) -> dict[str, str]:
        _, name, _ = self._binary_name(app_dir)
        return {"web": f"./bin/{name}"}


# --- python -------------------------------------------------------------------------------


_REQ_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(
    rf"(?P<name>{_REQ_NAME})\s*(?:\[[A-Za-z0-9._,\s-]*\])?\s*"
    r"(?P<spec>(?:(?:===|==|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*)"
    r"(?:@\s*\S+\s*)?(?:;.*)?"
)


@dataclass(frozen=True, slots=True)
class _Requirement:
    name: str
    spec: str
    source: str  # "requirements.txt (line 3)"

    @property
    def version(self) -> str:
        # What pip would plausibly pick: the pin, else the lower bound, else made up.
        for op in ("===", "==", "~=", ">="):
            m = re.search(rf"(?:^|,){op}([A-Za-z0-9.+!_-]+)", self.spec)
            if m and "*" not in m[1]:
                return m[1]
        return _pseudo_version(self.name)

    @property
    def module(self) -> str:
        return re.sub(r"[-.]+", "_", self.name.lower())


class PythonBuildpack(Buildpack):
    name = "python_buildpack"
    short_name = "python"
    version = "1.8.23"
    language = "Python"
    pythons = {"3.9": "3.9.19", "3.10": "3.10.14", "3.11": "3.11.9", "3.12": "3.12.4"}
    default_python = "3.11.9"
    pip_pop = "0.1.5"

    def detect(self, app_dir: Path) -> bool:
        return any((app_dir / f).is_file() for f in ("requirements.txt", "Pipfile", "pyproject.toml"))

    def _requested_python(self, app_dir: Path) -> str | None:
        for name in ("runtime.txt", ".python-version"):
            path = app_dir / name
            if path.is_file():
                text = _read_text(path).strip()
                m = re.fullmatch(r"(?:python-)?(\d+\.\d+(?:\.(?:\d+|x))?)", text)
                if not m:
                    raise BuildpackCompileFailed(f"Could not parse {name}: {text!r} is not 'python-3.X.Y'")
                return m[1]
        pipfile = self._toml(app_dir, "Pipfile")
        requires = pipfile.get("requires") if pipfile else None
        if isinstance(requires, dict) and isinstance(requires.get("python_version"), str):
            return requires["python_version"]
        return None

    def _toml(self, app_dir: Path, name: str) -> dict[str, object] | None:
        path = app_dir / name
        if not path.is_file():
            return None
        try:
            return tomllib.loads(_read_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise BuildpackCompileFailed(f"Could not parse {name}: {exc}") from None

    def _requirements(self, app_dir: Path) -> tuple[str, list[_Requirement]]:
        """(how they are installed, requirements) from the app's dependency file."""
        if (app_dir / "requirements.txt").is_file():
            return "Running Pip Install", _read_requirements(app_dir, Path("requirements.txt"), set())
        pipfile = self._toml(app_dir, "Pipfile")
        if pipfile is not None:
            packages = pipfile.get("packages") or {}
            if not isinstance(packages, dict):
                raise BuildpackCompileFailed("Could not parse Pipfile: [packages] must be a table")
            reqs = []
            for name, spec in packages.items():
                version = spec.get("version", "") if isinstance(spec, dict) else spec
                reqs.append(_requirement(f"{name}{'' if version in ('*', '') else version}", "Pipfile"))
            return "Generating 'requirements.txt' with pipenv", reqs
        project = self._toml(app_dir, "pyproject.toml") or {}
        deps: list[str] = []
        table = project.get("project")
        if isinstance(table, dict) and table.get("dependencies") is not None:
            listed = table["dependencies"]
            if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
                raise BuildpackCompileFailed(
                    "Could not parse pyproject.toml: project.dependencies must be a list of strings"
                )
            deps = list(listed)
        else:
            tool = project.get("tool")
            poetry = tool.get("poetry") if isinstance(tool, dict) else None
            pdeps = poetry.get("dependencies") if isinstance(poetry, dict) else None
            if isinstance(pdeps, dict):
                deps = [name for name in pdeps if name.lower() != "python"]
        return "Running Pip Install", [_requirement(d, "pyproject.toml") for d in deps]

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        out("-----> Supplying Python")
        python, warning = _pick_line(self._requested_python(app_dir), self.pythons, self.default_python, "python")
        how, reqs = self._requirements(app_dir)
        out(f"-----> Installing python {python}")
        if warning:
            out(f"{_INDENT}**WARNING** {warning}")
        line = python.rsplit(".", 1)[0]
        _stub(deps_dir / "python" / "bin" / "python", f"python {python}")
        _stub(deps_dir / "python" / "bin" / "pip", f"pip for python {python}")
        out(f"-----> Installing pip-pop {self.pip_pop}")
        _stub(deps_dir / "bin" / "pip-pop", f"pip-pop {self.pip_pop}")
        out(f"-----> {how}")
        site = deps_dir / "python" / "lib" / f"python{line}" / "site-packages"
        installed: dict[str, _Requirement] = {}
        for req in reqs:
            out(f"{_INDENT}Collecting {req.name}{req.spec} (from {req.source})")
            installed.setdefault(req.module, req)
        if installed:
            names = ", ".join(r.name for r in installed.values())
            out(f"{_INDENT}Installing collected packages: {names}")
            for req in installed.values():
                _write(site / req.module / "__init__.py", f'"""{req.name} (stub)."""\n__version__ = "{req.version}"\n')
            out(f"{_INDENT}Successfully installed " + " ".join(f"{r.name}-{r.version}" for r in installed.values()))
        _write(
            deps_dir / "profile.d" / "python.sh",
            f'export PATH="$DEPS_DIR/{deps_dir.name}/python/bin:$PATH"\n'
            f'export PYTHONPATH="$DEPS_DIR/{deps_dir.name}/python/lib/python{line}/site-packages"\n',
        )
        self._config(deps_dir, python=python)

    def release(self, app_dir: Path) -> dict[str, str]:
        for name in ("app.py", "main.py"):
            if (app_dir / name).is_file():
                return {"web": f"python {name}"}
        for path in sorted(app_dir.glob("*.py")):
            if path.is_file() and path.stat().st_size <= MAX_CONFIG_FILE_BYTES:
                text = path.read_text(encoding="utf-8", errors="replace")
                if re.search(r"""^if\s+__name__\s*==\s*['"]__main__['"]\s*:""", text, re.M):
                    return {"web": f"python {path.name}"}
        return {}


def _requirement(text: str, source: str) -> _Requirement:
    text = re.split(r"\s--\S", f" {text}", maxsplit=1)[0].strip()
    m = _REQUIREMENT.fullmatch(text)
    if not m:
        raise BuildpackCompileFailed(f"Invalid requirement: {text!r} ({source})")
    return _Requirement(m["name"], re.sub(r"\s+", "", m["spec"]), source)


def _read_requirements(app_dir: Path, rel: Path, seen: set[Path]) -> list[_Requirement]:
    """Requirements of `rel` (and the files it includes with ``-r``)."""
    path = (app_dir / rel).resolve()
    root = app_dir.resolve()
    if root not in path.parents:
        raise BuildpackCompileFailed(f"{rel} is outside the app directory")
    if path in seen:
        return []
    seen.add(path)
    if not path.is_file():
        raise BuildpackCompileFailed(f"Could not open requirements file: {rel.as_posix()} does not exist")
    shown = path.relative_to(root).as_posix()
    reqs: list[_Requirement] = []
    # Backslash-newline continues a line, as pip reads it.
    text = re.sub(r"\\\r?\n", "", _read_text(path, shown))
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        source = f"-r /tmp/app/{shown} (line {number})"
        if m := re.fullmatch(r"(?:-r|--requirement)(?:\s+|=)(\S+)", line):
            reqs.extend(_read_requirements(app_dir, Path(shown).parent / m[1], seen))
        elif line.startswith("-"):
            continue  # --index-url, -c, -e, --find-links...: options pip takes; nothing to install here
        elif re.match(r"[a-z][a-z0-9+.-]*://", line):
            named = re.search(r"#egg=([A-Za-z0-9._-]+)", line) or re.search(
                r"/([A-Za-z0-9_.]+)-[^/-]+-[^/]*\.whl$", line
            )
            if named is None:
                raise BuildpackCompileFailed(f"Invalid requirement: {line!r} ({shown} line {number}): no #egg= name")
            reqs.append(_Requirement(named[1], "", source))
        else:
            try:
                reqs.append(_requirement(line, source))
            except BuildpackCompileFailed:
                raise BuildpackCompileFailed(f"Invalid requirement: {line!r} ({shown} line {number})") from None
    return reqs


# --- binary -----------------------------------------------------------------------------------


class BinaryBuildpack(Buildpack):
    name = "binary_buildpack"
    short_name = "binary"
    version = "1.1.11"
    language = "Binary"

    def detect(self, app_dir: Path) -> bool:
        # Any directory could hold a binary: it must be chosen by name.
        return False


# --- registry and staging ---------------------------------------------------------------------

BUILDPACKS: tuple[Buildpack, ...] = (
    StaticfileBuildpack(),
    JavaBuildpack(),
    RubyBuildpack(),
    NodejsBuildpack(),
    GoBuildpack(),
    PythonBuildpack(),
    BinaryBuildpack(),
)


def find_buildpack(name: str, registry: Iterable[Buildpack] = BUILDPACKS) -> Buildpack:
    """The buildpack called `name` (``python``, ``python_buildpack`` or ``python-buildpack``)."""
    key = name.strip().lower().replace("-", "_")
    for bp in registry:
        if key in (bp.name, bp.short_name):
            return bp
    raise UnknownBuildpack(f'Buildpack "{name}" must be an existing admin buildpack or a valid git URI')


def detect_buildpack(app_dir: Path, registry: Iterable[Buildpack] = BUILDPACKS) -> Buildpack | None:
    """The first buildpack, in priority order, whose detect passes."""
    for bp in registry:
        if bp.detect(app_dir):
            return bp
    return None


@dataclass(frozen=True, slots=True)
class StagingResult:
    """What staging produced: the buildpacks that ran, the start command, the droplet."""

    detected_buildpack: str
    buildpacks: tuple[tuple[str, str], ...]  # (name, version) in the order they ran
    start_command: str
    process_types: tuple[tuple[str, str], ...]  # (type, command), sorted by type
    droplet_path: str
    droplet_sha256: str
    droplet_size: int


def _copy_app(src: Path, dst: Path) -> None:
    """Copy the app into the build directory; links and special files are refused
    (packages never contain them, and a link could lead a buildpack outside)."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(dirnames + filenames):
            st = os.lstat(Path(dirpath) / name)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{(rel / name).as_posix()} is a symlink; staging copies regular files only")
            if stat.S_ISREG(st.st_mode):
                shutil.copy2(Path(dirpath) / name, dst / rel / name)
            elif not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"{(rel / name).as_posix()} is not a regular file")


def _phase(error: type[PlatformError], bp: Buildpack, step: Callable[[], object]) -> object:
    """Run a buildpack phase; a buildpack that crashes fails its phase, as in CF."""
    try:
        return step()
    except PlatformError:
        raise
    except Exception as exc:  # a broken buildpack must fail staging, not the cell
        raise error(f"{bp.name} failed: {type(exc).__name__}: {exc}") from exc


def stage(
    app_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    buildpack_names: Sequence[str],
    command_override: str | None,
    out: Out,
    *,
    mtime: int = 0,
    registry: Sequence[Buildpack] = BUILDPACKS,
) -> StagingResult:
    """Stage the app in `app_dir`; build the droplet at ``work_dir/droplet.tgz``.

    `work_dir` must be absent or empty (or hold only ``app``, when `app_dir`
    is ``work_dir/app``: then it is staged in place). It receives ``app/``
    (the build directory), ``deps/<i>/`` and the droplet. `app_dir` itself is
    left untouched otherwise.
    """
    src = Path(app_dir)
    work = Path(work_dir)
    build = work / "app"
    in_place = src.resolve() == build.resolve() if build.exists() else False
    if not src.is_dir():
        raise StagingError(f"Staging error: app directory {src} does not exist")
    try:
        work.mkdir(parents=True, exist_ok=True)
        leftovers = [p.name for p in work.iterdir() if not (in_place and p.name == "app")]
        if leftovers:
            raise StagingError(f"Staging error: work directory {work} is not empty ({sorted(leftovers)[0]})")
        if not in_place:
            _copy_app(src, build)
    except OSError as exc:
        raise StagingError(f"Staging error: cannot prepare {work}: {exc}") from exc

    if buildpack_names:
        chosen = [find_buildpack(n, registry) for n in buildpack_names]
        for bp in chosen[:-1]:
            if not bp.supports_supply:
                raise BuildpackCompileFailed(
                    f"{bp.name} does not support multi-buildpack: it can only be the last buildpack"
                )
    else:
        detected = detect_buildpack(build, registry)
        if detected is None:
            out("None of the buildpacks detected a compatible application")
            raise NoAppDetectedError()
        chosen = [detected]

    deps = work / "deps"
    try:
        for index, bp in enumerate(chosen):
            deps_dir = deps / str(index)
            deps_dir.mkdir(parents=True)
            _phase(BuildpackCompileFailed, bp, lambda: bp.supply(build, deps_dir, out))
        last = chosen[-1]
        last_deps = deps / str(len(chosen) - 1)
        _phase(BuildpackCompileFailed, last, lambda: last.finalize(build, last_deps, out))
        released = _phase(BuildpackReleaseFailed, last, lambda: last.release(build))
        if not isinstance(released, dict):
            raise BuildpackReleaseFailed(f"{last.name} release gave {type(released).__name__}, not process types")
        process_types = {str(k): str(v) for k, v in released.items()}
        if (build / "Procfile").is_file():
            process_types.update(parse_procfile(_read_procfile(build / "Procfile")))
        if command_override and command_override.strip():
            process_types["web"] = command_override
        start_command = process_types.get("web", "")
        if not start_command.strip():
            out("No start command specified by buildpack or via Procfile.")
            out("App will not start unless a command is provided at runtime.")
            raise BuildpackReleaseFailed(
                f"No start command detected by {last.name}: add a Procfile with a 'web:' line, "
                "or push with -c COMMAND"
            )
        info = StagingInfo(
            detected_buildpack=last.detect_output,
            start_command=start_command,
            buildpacks=tuple((bp.name, bp.version) for bp in chosen),
            process_types=tuple(sorted(process_types.items())),
        )
        droplet = build_droplet(build, deps, work / "droplet.tgz", info, mtime=mtime)
    except OSError as exc:
        raise StagingError(f"Staging error: {exc}") from exc
    return StagingResult(
        detected_buildpack=info.detected_buildpack,
        buildpacks=info.buildpacks,
        start_command=start_command,
        process_types=info.process_types,
        droplet_path=droplet.path,
        droplet_sha256=droplet.sha256,
        droplet_size=droplet.size,
    )


def _read_procfile(path: Path) -> str:
    try:
        return _read_text(path, "Procfile")
    except BuildpackCompileFailed as exc:
        raise BuildpackReleaseFailed(f"Failed to read command from Procfile: {exc.message}") from None
