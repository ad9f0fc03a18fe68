"""The staticfile buildpack: an index.html or Staticfile served by nginx."""

from __future__ import annotations

from pathlib import Path

import yaml

from actors.cell.buildpacks.base import (
    INDENT,
    Buildpack,
    Out,
    read_text,
    stub,
    write,
)
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.errors import BuildpackCompileFailed

# --- staticfile -------------------------------------------------------------------


class StaticfileBuildpack(Buildpack):
    name = "staticfile_buildpack"
    short_name = "staticfile"
    version = BUILDPACK_VERSIONS["staticfile_buildpack"]
    language = "Staticfile"
    nginx = "1.25.5"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "Staticfile").is_file() or (app_dir / "index.html").is_file()

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        out("-----> Installing nginx")
        out(f"{INDENT}Using nginx version {self.nginx}")
        stub(deps_dir / "nginx" / "sbin" / "nginx", f"nginx {self.nginx}")
        self._config(deps_dir, nginx=self.nginx)

    def _options(self, app_dir: Path) -> dict[str, object]:
        path = app_dir / "Staticfile"
        if not path.is_file():
            return {}
        try:
            doc = yaml.safe_load(read_text(path))
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
        if truthy(options.get("pushstate")):
            out("-----> Enabling pushstate")
        if truthy(options.get("directory")) or str(options.get("directory")) == "visible":
            out("-----> Enabling directory index for folders without index.html")
        if truthy(options.get("host_dot_files")):
            out("-----> Enabling hosting of dotfiles")
        if not (root / "index.html").is_file():
            out(f"{INDENT}**WARNING** No index.html in the root folder: '/' will answer 404")
        served = "$HOME" if rel == "." else f"$HOME/{rel}"
        write(
            app_dir / "nginx" / "conf" / "nginx.conf",
            "worker_processes 1;\n"
            "daemon off;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  server {\n"
            '    listen <%= ENV["PORT"] %>;\n'
            f"    root {served};\n"
            "    index index.html index.htm;\n"
            "  }\n"
            "}\n",
        )
        write(
            app_dir / "boot.sh",
            "#!/bin/sh\n"
            "# Starts nginx on $PORT (simulated: instances do not execute it).\n"
            'exec "$DEPS_DIR"/*/nginx/sbin/nginx -p "$HOME/nginx" -c "$HOME/nginx/conf/nginx.conf"\n',
            0o755,
        )

    def release(self, app_dir: Path) -> dict[str, str]:
        return {"web": "$HOME/boot.sh"}


def truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "enabled"))
