"""The Python buildpack: requirements.txt, a Pipfile or a pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from actors.cell.buildpacks.base import (
    INDENT,
    MAX_CONFIG_FILE_BYTES,
    Buildpack,
    Out,
    pick_line,
    read_text,
    stub,
    write,
)
from actors.cell.buildpacks.requirements import (
    Requirement,
    read_requirements,
    requirement,
)
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.errors import BuildpackCompileFailed


class PythonBuildpack(Buildpack):
    name = "python_buildpack"
    short_name = "python"
    version = BUILDPACK_VERSIONS["python_buildpack"]
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
                text = read_text(path).strip()
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
            return tomllib.loads(read_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise BuildpackCompileFailed(f"Could not parse {name}: {exc}") from None

    def _requirements(self, app_dir: Path) -> tuple[str, list[Requirement]]:
        """(how they are installed, requirements) from the app's dependency file."""
        if (app_dir / "requirements.txt").is_file():
            return "Running Pip Install", read_requirements(app_dir, Path("requirements.txt"), set())
        pipfile = self._toml(app_dir, "Pipfile")
        if pipfile is not None:
            packages = pipfile.get("packages") or {}
            if not isinstance(packages, dict):
                raise BuildpackCompileFailed("Could not parse Pipfile: [packages] must be a table")
            reqs = []
            for name, spec in packages.items():
                version = spec.get("version", "") if isinstance(spec, dict) else spec
                reqs.append(requirement(f"{name}{'' if version in ('*', '') else version}", "Pipfile"))
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
        return "Running Pip Install", [requirement(d, "pyproject.toml") for d in deps]

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        out("-----> Supplying Python")
        python, warning = pick_line(self._requested_python(app_dir), self.pythons, self.default_python, "python")
        how, reqs = self._requirements(app_dir)
        out(f"-----> Installing python {python}")
        if warning:
            out(f"{INDENT}**WARNING** {warning}")
        line = python.rsplit(".", 1)[0]
        stub(deps_dir / "python" / "bin" / "python", f"python {python}")
        stub(deps_dir / "python" / "bin" / "pip", f"pip for python {python}")
        out(f"-----> Installing pip-pop {self.pip_pop}")
        stub(deps_dir / "bin" / "pip-pop", f"pip-pop {self.pip_pop}")
        out(f"-----> {how}")
        site = deps_dir / "python" / "lib" / f"python{line}" / "site-packages"
        installed: dict[str, Requirement] = {}
        for req in reqs:
            out(f"{INDENT}Collecting {req.name}{req.spec} (from {req.source})")
            installed.setdefault(req.module, req)
        if installed:
            names = ", ".join(r.name for r in installed.values())
            out(f"{INDENT}Installing collected packages: {names}")
            for req in installed.values():
                write(site / req.module / "__init__.py", f'"""{req.name} (stub)."""\n__version__ = "{req.version}"\n')
            out(f"{INDENT}Successfully installed " + " ".join(f"{r.name}-{r.version}" for r in installed.values()))
        write(
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
