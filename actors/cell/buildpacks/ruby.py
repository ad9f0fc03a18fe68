"""The Ruby buildpack: a Gemfile, Rack or Rails."""

from __future__ import annotations

import re
from pathlib import Path

from actors.cell.buildpacks.base import (
    INDENT,
    Buildpack,
    Out,
    pick_line,
    pseudo_version,
    read_text,
    stub,
    write,
)
from actors.cell.buildpacks.semver import exact_version
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.errors import BuildpackCompileFailed

# --- ruby -------------------------------------------------------------------------


class RubyBuildpack(Buildpack):
    name = "ruby_buildpack"
    short_name = "ruby"
    version = BUILDPACK_VERSIONS["ruby_buildpack"]
    language = "Ruby"
    rubies = {"3.1": "3.1.6", "3.2": "3.2.5", "3.3": "3.3.5"}
    default_ruby = "3.3.5"
    bundler = "2.5.18"

    def detect(self, app_dir: Path) -> bool:
        return (app_dir / "Gemfile").is_file()

    def _gemfile(self, app_dir: Path) -> tuple[str | None, list[tuple[str, str | None]]]:
        text = read_text(app_dir / "Gemfile")
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
            ruby = read_text(app_dir / ".ruby-version").strip().removeprefix("ruby-") or None
        return ruby, gems

    def supply(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        self._header(out)
        out("-----> Supplying ruby")
        requested, gems = self._gemfile(app_dir)
        if requested:
            requested = ".".join(requested.split(".")[:2])
        ruby, warning = pick_line(requested, self.rubies, self.default_ruby, "ruby")
        out(f"-----> Installing bundler {self.bundler}")
        out(f"-----> Installing ruby {ruby}")
        if warning:
            out(f"{INDENT}**WARNING** {warning}")
        stub(deps_dir / "ruby" / "bin" / "ruby", f"ruby {ruby}")
        stub(deps_dir / "ruby" / "bin" / "bundle", f"bundler {self.bundler}")
        out(f"-----> Installing dependencies using bundler {self.bundler}")
        lock = " --deployment" if (app_dir / "Gemfile.lock").is_file() else ""
        out(f"{INDENT}Running: bundle install --without development:test --jobs=4 --retry=4{lock}")
        out(f"{INDENT}Fetching gem metadata from https://rubygems.org/")
        gem_root = deps_dir / "vendor_bundle" / "ruby" / f"{ruby.rsplit('.', 1)[0]}.0" / "gems"
        for gem, constraint in gems:
            version = exact_version(constraint) or pseudo_version(gem)
            out(f"{INDENT}Installing {gem} {version}")
            write(gem_root / f"{gem}-{version}" / "lib" / f"{gem}.rb", f"# {gem} {version} (stub)\n")
        out(f"{INDENT}Bundle complete! {len(gems)} Gemfile dependencies, {len(gems)} gems now installed.")
        self._config(deps_dir, ruby=ruby, bundler=self.bundler)

    def release(self, app_dir: Path) -> dict[str, str]:
        if (app_dir / "config" / "application.rb").is_file() and (app_dir / "config.ru").is_file():
            return {"web": "bin/rails server -b 0.0.0.0 -p $PORT -e $RAILS_ENV"}
        if (app_dir / "config.ru").is_file():
            return {"web": "bundle exec rackup config.ru -p $PORT"}
        return {}
