"""Simulated buildpacks, and staging: app directory in, droplet out.

The buildpacks work on a staging's files (a build tree in memory,
`actors.cell.buildtree`, or a real directory: they use the part of
`pathlib.Path` both answer) and print what real Cloud Foundry buildpacks
print, but install nothing real: an "installed"
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

from actors.cell.buildpacks.base import Buildpack, Out
from actors.cell.buildpacks.binary import BinaryBuildpack
from actors.cell.buildpacks.go import GoBuildpack
from actors.cell.buildpacks.java import JavaBuildpack
from actors.cell.buildpacks.lifecycle import StagingResult, parse_procfile, stage
from actors.cell.buildpacks.nodejs import NodejsBuildpack
from actors.cell.buildpacks.python import PythonBuildpack
from actors.cell.buildpacks.registry import BUILDPACKS, detect_buildpack, find_buildpack
from actors.cell.buildpacks.ruby import RubyBuildpack
from actors.cell.buildpacks.staticfile import StaticfileBuildpack

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
