"""The buildpacks the platform has, by name, in Cloud Foundry's default
detection order: what Cloud Controller checks a push against, and what the
cells implement (`actors.cell.buildpacks`)."""

from __future__ import annotations

from protocol.errors import UnknownBuildpack

__all__ = ["BUILDPACK_NAMES", "BUILDPACK_VERSIONS", "buildpack_name"]

BUILDPACK_NAMES = (
    "staticfile_buildpack",
    "java_buildpack",
    "ruby_buildpack",
    "nodejs_buildpack",
    "go_buildpack",
    "python_buildpack",
    "binary_buildpack",
)

#: The version of each installed buildpack (as `cf buildpacks` and the
#: droplet's buildpack table show it; the cells' buildpacks carry these).
BUILDPACK_VERSIONS = {
    "staticfile_buildpack": "1.6.14",
    "java_buildpack": "4.69.0",
    "ruby_buildpack": "1.10.16",
    "nodejs_buildpack": "1.8.30",
    "go_buildpack": "1.10.22",
    "python_buildpack": "1.8.23",
    "binary_buildpack": "1.1.11",
}


def buildpack_name(name: str) -> str:
    """The buildpack `name` means (``python``, ``python_buildpack`` or
    ``python-buildpack``); `UnknownBuildpack` if there is none."""
    key = name.strip().lower().replace("-", "_")
    for known in BUILDPACK_NAMES:
        if key in (known, known.removesuffix("_buildpack")):
            return known
    raise UnknownBuildpack(f'Buildpack "{name}" must be an existing admin buildpack or a valid git URI')
