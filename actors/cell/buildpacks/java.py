"""The Java buildpack: a jar or war, or one exploded."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from actors.cell.buildpacks.base import (
    INDENT,
    Buildpack,
    Out,
    read_text,
    stub,
)
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.errors import BuildpackCompileFailed

# --- java -------------------------------------------------------------------------


class JavaBuildpack(Buildpack):
    name = "java_buildpack"
    short_name = "java"
    version = BUILDPACK_VERSIONS["java_buildpack"]
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
            with archive.open("rb") as fh:
                valid = zipfile.is_zipfile(fh)
            if not valid:
                raise BuildpackCompileFailed(f"{archive.name} is not a valid {archive.suffix[1:].upper()} file")
        self._config(deps_dir, jre=self.jre)

    def finalize(self, app_dir: Path, deps_dir: Path, out: Out) -> None:
        base = "https://java-buildpack.cloudfoundry.org"
        out(f"-----> Downloading Jvmkill Agent 1.17.0_RELEASE from {base}/jvmkill/jammy/x86_64/")
        out(f"-----> Downloading Open Jdk JRE {self.jre} from {base}/openjdk/jammy/x86_64/")
        out(f"{INDENT}Expanding Open Jdk JRE to .java-buildpack/open_jdk_jre")
        out(f"-----> Downloading Open JDK Like Memory Calculator 3.13.0_RELEASE from {base}/memory-calculator/")
        jbp = app_dir / ".java-buildpack"
        stub(jbp / "open_jdk_jre" / "bin" / "java", f"OpenJDK JRE {self.jre}")
        if self._uses_tomcat(app_dir):
            out(f"-----> Downloading Tomcat Instance {self.tomcat} from {base}/tomcat/tomcat-{self.tomcat}.tar.gz")
            out(f"{INDENT}Expanding Tomcat Instance to .java-buildpack/tomcat")
            stub(jbp / "tomcat" / "bin" / "catalina.sh", f"Apache Tomcat {self.tomcat}")

    def _uses_tomcat(self, app_dir: Path) -> bool:
        return not self._archives(app_dir, ".jar") and (
            bool(self._archives(app_dir, ".war")) or (app_dir / "WEB-INF").is_dir()
        )

    def _main_class(self, app_dir: Path) -> str | None:
        manifest = app_dir / "META-INF" / "MANIFEST.MF"
        if not manifest.is_file():
            return None
        m = re.search(r"^Main-Class:\s*(\S+)\s*$", read_text(manifest, "META-INF/MANIFEST.MF"), re.M)
        return m[1] if m else None

    def release(self, app_dir: Path) -> dict[str, str]:
        jars = self._archives(app_dir, ".jar")
        if jars:
            return {"web": f"java -jar {jars[0].name}"}
        if self._uses_tomcat(app_dir):
            return {"web": "$PWD/.java-buildpack/tomcat/bin/catalina.sh run"}
        main = self._main_class(app_dir)
        return {"web": f"java -cp $PWD/. {main}"} if main else {}
