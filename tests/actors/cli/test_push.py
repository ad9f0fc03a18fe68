"""`cf push` end to end: the real actors (SQLite CC_DB, blob files, tar
droplets) on a virtual clock, one user-visible behaviour per test."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.cli.commands import COMMANDS
from actors.cli.render import steps_in_order
from protocol.buildpacks import BUILDPACK_VERSIONS
from protocol.messages import GetTrace
from protocol.states import AppState, BuildState
from tests.actors.conftest import (
    EXAMPLES,
    actual_lrps,
    app_guid,
    db,
    line_starting,
    platform_state,
    run,
    run_streams,
)

pytestmark = pytest.mark.anyio

SEED_STEPS = list(range(1, 13))


def _app_files(path: Path) -> list[Path]:
    """What a push of an example uploads: everything but its manifest."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != "manifest.yml")


def _copy_example(name: str, dest: Path) -> Path:
    shutil.copytree(EXAMPLES / name, dest)
    return dest


async def _push_hello(platform, path: Path | None = None) -> list[str]:
    """`cf push hello` in the app's directory: its manifest (256M, 2 instances) applies, renamed."""
    code, lines = await run(platform, "push", "hello", cwd=path or EXAMPLES / "python")
    assert code == 0, "\n".join(lines)
    return lines


# --- a push, as the user sees it ------------------------------------------------------------


async def test_pushing_the_python_example_stages_it_and_shows_two_running_instances(platform):
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"), "-i", "2", "-m", "256M")

    text = "\n".join(lines)
    assert code == 0, text
    assert lines[:3] == [
        "Pushing app hello to org minifoundry / space dev as admin...",
        "Packaging files to upload...",
        "Uploading files...",
    ]
    assert re.fullmatch(r" \d+ B / \d+ B  100\.00% 1s", lines[3]), text
    assert lines[4:8] == ["", "Waiting for API to complete processing files...", "", "Staging app and tracing logs..."]
    assert any(line.startswith("   -----> Python Buildpack version") for line in lines), text
    assert "   Exit status 0" in lines
    assert any(re.fullmatch(r"   Uploaded droplet \(\d+(\.\d)?[BKM]\)", line) for line in lines), text
    assert "Waiting for app hello to start..." in lines
    # the summary comes last, in this order
    order = [
        "name:              hello",
        "requested state:   started",
        "routes:            hello.apps.internal",
        "last uploaded:     ...",
        "stack:             cflinuxfs4",
        "buildpacks:        ",
        "\tname               version   detect output   buildpack name",
        "\tpython_buildpack   1.8.23    python          python",
        "",
        "type:            web",
        "sidecars:        ",
        "instances:       2/2",
        "memory usage:    256M",
        "start command:   python app.py",
    ]
    start = lines.index("name:              hello")
    shown = lines[start : start + len(order)]
    assert re.fullmatch(r"last uploaded:     \w{3} \d\d \w{3} \d\d:\d\d:\d\d \w+ \d{4}", shown[3]), text
    shown[3] = "last uploaded:     ..."
    assert shown == order, text
    assert start > lines.index("Waiting for app hello to start...")
    assert lines[start + len(order)] == (
        "     state     since                  cpu    memory        disk        logging"
        "             cpu entitlement   details   ready"
    )
    assert re.fullmatch(
        r"#0   running   \S+Z   0\.0%   32M of 256M   60M of 1G   0B/s of unlimited {31}true",
        line_starting(lines, "#0 "),
    )
    assert re.match(r"#1   running   \S+Z   ", line_starting(lines, "#1 "))


async def test_an_app_name_with_spaces_and_punctuation_pushes_without_the_default_route(platform):
    # Cloud Controller takes any printable name (the default route needs a host-like one).
    code, lines = await run(platform, "push", "My App (v2)", "-p", str(EXAMPLES / "static"), "-m", "64M", "--no-route")

    assert code == 0, "\n".join(lines)
    code, lines = await run(platform, "app", "My App (v2)")
    assert code == 0 and "name:              My App (v2)" in lines, lines
    code, lines = await run(platform, "apps")
    assert any(line.startswith("My App (v2)   started") for line in lines), lines


@pytest.mark.parametrize(
    ("example", "app", "buildpack", "language"),
    [
        ("python", "python-hello", "python", "Python"),
        ("node", "node-hello", "nodejs", "Nodejs"),
        ("static", "static-hello", "staticfile", "Staticfile"),
        ("go", "go-hello", "go", "Go"),
        ("binary", "binary-hello", "binary", "Binary"),
    ],
)
async def test_every_example_app_pushes_with_one_command_and_stages_with_its_buildpack(
    platform, example, app, buildpack, language
):
    code, lines = await run(platform, "push", cwd=EXAMPLES / example)

    text = "\n".join(lines)
    assert code == 0, text
    assert lines[0] == f"Pushing app {app} to org minifoundry / space dev as admin..."
    assert f"   -----> {language} Buildpack version" in "\n".join(lines)
    assert line_starting(lines, f"\t{buildpack}_buildpack ").split() == [
        f"{buildpack}_buildpack",
        BUILDPACK_VERSIONS[f"{buildpack}_buildpack"],
        buildpack,
        buildpack,
    ]
    assert f"Applying manifest file {EXAMPLES / example / 'manifest.yml'}..." in lines
    assert "Manifest applied" in lines
    record = await db(platform, "find_app", name=app)
    assert f"instances:       {record.instances}/{record.instances}" in lines
    droplet = await db(platform, "current_droplet", app_guid=record.guid)
    assert droplet is not None and droplet.buildpacks == (f"{buildpack}_buildpack",)
    [build] = await db(platform, "list_builds", app_guid=record.guid)
    assert build.state is BuildState.STAGED and build.droplet_guid == droplet.guid


async def test_an_app_no_buildpack_detects_fails_staging_with_no_app_detected_error(platform):
    code, lines = await run(platform, "push", "undetectable", "-p", str(EXAMPLES / "undetectable"))

    error = "NoAppDetectedError - An app was not successfully detected by any available buildpack"
    assert code == 1
    assert lines[-2:] == [error, "FAILED"]  # push prints Cloud Controller's build error as it is
    assert "   Exit status 222" in lines
    assert "Waiting for app undetectable to start..." not in lines
    guid = await app_guid(platform, "undetectable")
    [build] = await db(platform, "list_builds", app_guid=guid)
    assert build.state is BuildState.FAILED
    assert build.error == error
    assert (await db(platform, "get_app", guid=guid)).droplet_guid is None


# --- the seed's twelve steps ----------------------------------------------------------------------


async def test_the_trace_of_a_push_walks_the_twelve_seed_steps_in_order(platform):
    await _push_hello(platform)
    guid = await app_guid(platform, "hello")

    trace = await platform.system.ask("cloud_controller", GetTrace(guid))
    assert trace.kind == "push"
    assert steps_in_order(trace.deliveries) == SEED_STEPS

    code, lines = await run(platform, "trace", "hello")
    assert code == 0
    assert lines[0] == "sequenceDiagram"
    assert any(re.match(r"\s*user(->>|-\))cli: 1\. cf push hello", line) for line in lines), "\n".join(lines)
    # every step has at least one arrow, numbered in order of first appearance
    numbers = [int(m.group(1)) for line in lines if (m := re.search(r": (\d+)\. ", line))]
    assert list(dict.fromkeys(numbers)) == SEED_STEPS


async def test_a_manifest_with_two_apps_pushes_both_and_keeps_a_trace_of_each(platform, tmp_path):
    root = tmp_path / "two"
    _copy_example("python", root / "py")
    _copy_example("static", root / "site")
    (root / "manifest.yml").write_text(
        "applications:\n- name: api\n  path: py\n  memory: 64M\n- name: site\n  path: site\n  memory: 64M\n"
    )

    code, lines = await run(platform, "push", cwd=root)

    assert code == 0, "\n".join(lines)
    assert [line for line in lines if line.startswith("Pushing ")] == [
        "Pushing apps api, site to org minifoundry / space dev as admin..."
    ]
    assert lines.count("Manifest applied") == 1
    assert lines.count("Packaging files to upload...") == 2
    for name in ("api", "site"):
        trace = await db(platform, "latest_trace", app_guid=await app_guid(platform, name))
        assert trace is not None and trace.app_name == name
        assert steps_in_order(trace.deliveries) == SEED_STEPS
    code, lines = await run(platform, "trace", "site")
    assert code == 0
    assert len([line for line in lines if "db.create_app" in line]) == 1  # site's, not api's too


async def test_restart_runs_the_current_droplet_again_without_a_new_build(platform):
    await _push_hello(platform)
    guid = await app_guid(platform, "hello")
    droplet = (await db(platform, "get_app", guid=guid)).droplet_guid
    before = {a.instance_guid for a in await actual_lrps(platform, "hello")}

    code, lines = await run(platform, "restart", "hello")

    assert code == 0, "\n".join(lines)
    assert lines[:6] == [
        "Restarting app hello in org minifoundry / space dev as admin...",
        "",
        "Stopping app...",
        "",
        "Waiting for app to start...",
        "",
    ]
    assert "instances:      2/2" in lines  # no start command row: only push shows it
    assert len(await db(platform, "list_builds", app_guid=guid)) == 1
    assert (await db(platform, "get_app", guid=guid)).droplet_guid == droplet
    after = {a.instance_guid for a in await actual_lrps(platform, "hello")}
    assert not before & after  # new instances
    trace = await db(platform, "latest_trace", app_guid=guid)
    assert trace.kind == "restart"
    steps = steps_in_order(trace.deliveries)
    assert steps[-2:] == [11, 12]
    assert not set(steps) & set(range(2, 11))
    code, lines = await run(platform, "events", "hello")
    events = [line.split()[1] for line in lines[2:]]
    assert events[0] == "audit.app.restart"
    assert "audit.app.restage" not in events


async def test_restage_builds_a_new_droplet_from_the_package_then_restarts(platform):
    await _push_hello(platform)
    guid = await app_guid(platform, "hello")
    first_droplet = (await db(platform, "get_app", guid=guid)).droplet_guid

    code, lines = await run(platform, "restage", "hello")

    assert code == 0, "\n".join(lines)
    assert lines[:5] == [
        "This action will cause app downtime.",
        "",
        "Restaging app hello in org minifoundry / space dev as admin...",
        "",
        "Staging app and tracing logs...",
    ]
    assert "Restarting app hello in org minifoundry / space dev as admin..." in lines
    assert "instances:      2/2" in lines
    builds = await db(platform, "list_builds", app_guid=guid)
    assert len(builds) == 2 and all(b.state is BuildState.STAGED for b in builds)
    assert len({b.package_guid for b in builds}) == 1  # the same package, built again
    assert (await db(platform, "get_app", guid=guid)).droplet_guid not in (None, first_droplet)
    trace = await db(platform, "latest_trace", app_guid=guid)
    assert trace.kind == "restage"
    assert steps_in_order(trace.deliveries)[1:] == list(range(6, 13))
    code, lines = await run(platform, "events", "hello")
    assert "audit.app.restage" in [line.split()[1] for line in lines[2:]]


# --- resource matching ----------------------------------------------------------------------------


async def test_pushing_the_same_files_again_uploads_nothing(platform, tmp_path):
    src = _copy_example("python", tmp_path / "app")
    await _push_hello(platform, src)

    lines = await _push_hello(platform, src)

    assert lines[1:] and "All files found in remote cache; nothing to upload." in lines
    assert "Packaging files to upload..." not in lines and "Uploading files..." not in lines
    assert lines[lines.index("Manifest applied") + 1] == "All files found in remote cache; nothing to upload."


async def test_changing_one_file_uploads_only_that_file(platform, tmp_path):
    src = _copy_example("python", tmp_path / "app")
    await _push_hello(platform, src)
    changed = b"print('a new version')\n"
    (src / "app.py").write_bytes(changed)

    lines = await _push_hello(platform, src)

    assert "Uploading files..." in lines
    guid = await app_guid(platform, "hello")
    # Only the changed file travelled: the upload is a package of one file.
    bar = lines[lines.index("Uploading files...") + 1]
    assert re.fullmatch(r" (\d+) B / \1 B  100\.00% 1s", bar), bar
    assert int(bar.split()[0]) < 200
    assert len(await db(platform, "list_packages", app_guid=guid)) == 2


# --- bad input: a named error, exit 1, nothing changed ------------------------------------------------


def _symlink_outside(tmp: Path) -> list[str]:
    src = _copy_example("python", tmp / "linked")
    (tmp / "secret.txt").write_text("not yours\n")
    os.symlink(tmp / "secret.txt", src / "secret.txt")
    return ["push", "linked", "-p", str(src)]


def _tar_escaping(tmp: Path) -> list[str]:
    path = tmp / "evil.tar"
    with tarfile.open(path, "w") as tf:
        for name, data in (("app.py", b"print()\n"), ("../evil.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return ["push", "evil", "-p", str(path)]


def _zip_escaping(tmp: Path) -> list[str]:
    path = tmp / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("app.py", "print()\n")
        zf.writestr("../evil.txt", "x")
    return ["push", "evil", "-p", str(path)]


def _manifest_app(tmp: Path, manifest: str) -> list[str]:
    src = _copy_example("python", tmp / "app")
    (src / "manifest.yml").write_text(manifest)
    return ["push", "-f", str(src / "manifest.yml")]


def _empty_dir(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["push", "empty", "-p", str(tmp / "empty")]


def remove_deep_tree(top: Path) -> None:
    """Remove a tree too deep for shutil.rmtree (it recurses), deepest first."""
    chain = [os.open(top, os.O_RDONLY)]
    try:
        while True:
            try:
                chain.append(os.open("d", os.O_RDONLY, dir_fd=chain[-1]))
            except FileNotFoundError:
                break
        for name in os.listdir(chain[-1]):
            os.unlink(name, dir_fd=chain[-1])
        while len(chain) > 1:
            os.close(chain.pop())
            os.rmdir("d", dir_fd=chain[-1])
    finally:
        for fd in chain:
            os.close(fd)


def _deep_tree(tmp: Path) -> list[str]:
    src = _copy_example("python", tmp / "deep")
    # Made one level at a time from inside: a 1,500-level path is too long to name at once.
    here = os.open(src, os.O_RDONLY)
    try:
        for _ in range(1500):
            os.mkdir("d", dir_fd=here)
            deeper = os.open("d", os.O_RDONLY, dir_fd=here)
            os.close(here)
            here = deeper
        fd = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=here)
        os.close(fd)
    finally:
        os.close(here)
    return ["push", "deep", "-p", str(src)]


_ALIAS_BOMB = "applications:\n- name: bomb\n  env:\n    X: *j\n"
_LAUGHS = "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10 if i else ["lol"] * 10) + "]\n"
    for i in range(10)
)


def _too_large(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr("actors.appfiles.MAX_FILE_BYTES", 64)
    return ["push", "large", "-p", str(EXAMPLES / "python")]


USAGE = False  # cf's flag parser: the words and the command's help, no FAILED
FAILS = True  # cf's other errors: the words on stderr, FAILED on stdout

BAD_INPUTS: dict[str, tuple[Callable[..., list[str]], str, bool]] = {
    "missing path": (
        lambda tmp: ["push", "nowhere", "-p", str(tmp / "nope")],
        "Incorrect Usage: The specified path '{tmp}/nope' does not exist.",
        USAGE,
    ),
    "empty directory": (_empty_dir, "No app files found in '{tmp}/empty'", FAILS),
    "malformed manifest": (
        lambda tmp: _manifest_app(tmp, "applications:\n- name: [broken\n"),
        "Unable to push app because manifest {tmp}/app/manifest.yml is not valid yaml.",
        FAILS,
    ),
    "memory: lots": (
        lambda tmp: _manifest_app(tmp, "applications:\n- name: lots\n  memory: lots\n"),
        "Application 'lots': memory: ",
        FAILS,
    ),
    "invalid app name": (lambda tmp: ["push", "bad\tname", "-p", str(EXAMPLES / "python")], "App name ", FAILS),
    "app ghost": (lambda tmp: ["app", "ghost"], "App 'ghost' not found.", FAILS),
    "scale ghost": (lambda tmp: ["scale", "ghost", "-i", "2"], "App 'ghost' not found.", FAILS),
    "events ghost": (lambda tmp: ["events", "ghost"], "App 'ghost' not found.", FAILS),
    "restart ghost": (lambda tmp: ["restart", "ghost"], "App 'ghost' not found.", FAILS),
    "logs ghost": (lambda tmp: ["logs", "ghost", "--recent"], "App 'ghost' not found.", FAILS),
    "symlink outside the app": (_symlink_outside, "Symlink secret.txt points outside", FAILS),
    "tar with ../ entry": (_tar_escaping, "Entry '../evil.txt' escapes", FAILS),
    "zip with ../ entry": (_zip_escaping, "Entry '../evil.txt' escapes", FAILS),
    "file over the size limit": (_too_large, "", FAILS),
    "unknown command": (lambda tmp: ["frobnicate"], "'frobnicate' is not a registered command. See 'cf help -a'", None),
    "bad flag value": (
        lambda tmp: ["push", "hello", "-i", "lots"],
        "Incorrect Usage: invalid argument for flag '-i' (expected int > 0)",
        USAGE,
    ),
    "unknown flag": (
        lambda tmp: ["push", "hello", "--frobnicate"],
        "Incorrect Usage: unknown flag `frobnicate'",
        USAGE,
    ),
    "bad memory flag": (
        lambda tmp: ["scale", "hello", "-m", "lots"],
        "Incorrect Usage: Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB",
        USAGE,
    ),
    "bad scale count": (
        lambda tmp: ["scale", "hello", "-i", "abc"],
        "Incorrect Usage: invalid argument for flag '-i' (expected int > 0)",
        USAGE,
    ),
    "instances too large to be real": (
        lambda tmp: ["push", "huge", "-p", str(EXAMPLES / "python"), "-i", "99999999999999999999"],
        "Incorrect Usage: invalid argument for flag '-i' (expected int > 0)",
        USAGE,
    ),
    "memory too large to be real": (
        lambda tmp: ["push", "huge", "-p", str(EXAMPLES / "python"), "-m", "99999999999999999999G"],
        "Incorrect Usage: Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB",
        USAGE,
    ),
    "disk too large to be real": (
        lambda tmp: ["push", "huge", "-p", str(EXAMPLES / "python"), "-k", "99999999999999999999G"],
        "Incorrect Usage: Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB",
        USAGE,
    ),
    "memory past the quota": (
        lambda tmp: ["push", "huge", "-p", str(EXAMPLES / "python"), "-m", "99999G"],
        "You have exceeded your organization's memory limit",
        FAILS,
    ),
    "disk past the maximum": (
        lambda tmp: ["push", "huge", "-p", str(EXAMPLES / "python"), "-k", "50G"],
        "Disk quota too much disk requested (requested 51200 MB - must be less than 2048 MB)",
        FAILS,
    ),
    "scale disk past the maximum": (
        lambda tmp: ["scale", "hello", "-k", "3G", "-f"],
        "Disk quota too much disk requested (requested 3072 MB - must be less than 2048 MB)",
        FAILS,
    ),
    "scale past the quota": (lambda tmp: ["scale", "hello", "-i", "30000000"], "You have exceeded your", FAILS),
    "unknown stack": (
        lambda tmp: ["push", "stacked", "-p", str(EXAMPLES / "python"), "-s", "windows2016"],
        "Stack 'windows2016' does not exist",
        FAILS,
    ),
    "manifest key given twice": (
        lambda tmp: _manifest_app(tmp, "applications:\n- name: twice\n  memory: 64M\n  memory: 128M\n"),
        "mapping key 'memory' already defined at line 3",
        FAILS,
    ),
    "manifest alias bomb": (lambda tmp: _manifest_app(tmp, _LAUGHS + _ALIAS_BOMB), "Manifest ", FAILS),
    "manifest nested 5000 deep": (
        lambda tmp: _manifest_app(tmp, "applications:\n- name: deep\n  env:\n    X: " + "[" * 5000 + "]" * 5000 + "\n"),
        "Manifest ",
        FAILS,
    ),
    "a 1500-level directory tree": (_deep_tree, "", FAILS),
    "unknown buildpack": (
        lambda tmp: ["push", "hello", "-p", str(EXAMPLES / "python"), "-b", "cobol_buildpack"],
        'Buildpack "cobol_buildpack" must be an existing admin buildpack or a valid git URI',
        FAILS,
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=[c.replace(" ", "-") for c in BAD_INPUTS])
async def test_a_bad_input_fails_with_a_named_error_and_changes_nothing(platform, tmp_path, monkeypatch, case):
    await _push_hello(platform)
    make_argv, error, failed = BAD_INPUTS[case]
    argv = make_argv(tmp_path, monkeypatch) if make_argv is _too_large else make_argv(tmp_path)
    before = await platform_state(platform)

    code, out, err = await run_streams(platform, *argv)

    if (tmp_path / "deep").exists():
        remove_deep_tree(tmp_path / "deep")  # pytest could not clean it up later
    text = "\n".join(out + ["--- stderr:"] + err)
    assert code == 1, text
    assert err and err[0].startswith(error.format(tmp=tmp_path)), text
    assert not any(" - " in line.split("'")[0] and line.split(" - ")[0].isidentifier() for line in err[:1]), text
    if failed is USAGE:
        assert err[1:2] == [""] and out[:2] == ["NAME:", f"   {argv[0]} - {COMMANDS[argv[0]].summary}"], text
        assert "FAILED" not in out
    elif failed is FAILS:
        assert out[-1] == "FAILED", text
    else:
        assert out == [], text  # an unknown command: cf's one line on stderr, nothing else
    assert await platform_state(platform) == before


async def test_no_route_with_random_route_is_an_argument_combination_error(platform):
    before = await platform_state(platform)

    code, out, err = await run_streams(
        platform, "push", "both", "-p", str(EXAMPLES / "python"), "--no-route", "--random-route"
    )

    assert code == 1
    assert err[0] == "Incorrect Usage: The following arguments cannot be used together: --no-route, --random-route"
    assert out[0] == "FAILED" and "NAME:" in out
    assert await platform_state(platform) == before


async def test_an_unknown_manifest_key_only_warns_and_the_push_goes_on(platform, tmp_path):
    argv = _manifest_app(tmp_path, "applications:\n- name: flavoured\n  flavour: vanilla\n  memory: 64M\n")

    code, lines = await run(platform, *argv)

    assert code == 0, "\n".join(lines)
    assert lines[0] == "Application 'flavoured': unknown key 'flavour' ignored"  # a warning: stderr, first
    assert "instances:       1/1" in lines
    assert (await db(platform, "find_app", name="flavoured")).memory_mb == 64


async def test_push_with_no_start_uploads_but_leaves_the_app_stopped(platform):
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"), "--no-start")

    assert code == 0, "\n".join(lines)
    assert "Staging app and tracing logs..." not in lines
    assert "requested state:   stopped" in lines
    app = await db(platform, "find_app", name="hello")
    assert app.state is AppState.STOPPED and app.droplet_guid is None
    assert len(await db(platform, "list_packages", app_guid=app.guid)) == 1


async def test_pushing_zero_instances_succeeds_at_once_with_nothing_running(platform):
    started = platform.clock.monotonic()
    code, lines = await run(platform, "push", "hello", "-p", str(EXAMPLES / "python"), "-i", "0")

    assert code == 0, "\n".join(lines)
    assert platform.clock.monotonic() - started < 60  # not cf's five-minute start timeout
    assert "instances:       0/0" in lines
    assert lines[-1] == "There are no running instances of this process."


async def test_pushes_in_one_auction_round_each_keep_only_their_own_instances_in_their_trace(make_platform, tmp_path):
    # Four pushes at once on one cell: their stagings and their instances are
    # placed in the same rounds, each round's work in one Perform; what each
    # instance or staging then sets off belongs to its own push.
    platform = await make_platform(cells=1, zones=1).start()
    names = [f"app-{i}" for i in range(4)]
    app = _copy_example("python", tmp_path / "py")
    (app / "manifest.yml").unlink()
    results = await asyncio.gather(*(run(platform, "push", name, "-p", str(app), "-m", "64M") for name in names))
    assert [code for code, _ in results] == [0] * len(names)
    for name in names:
        trace = await db(platform, "latest_trace", app_guid=await app_guid(platform, name))
        labels = Counter(d["label"] for d in trace.deliveries)
        assert labels["InstanceStarted"] == 1 and labels["InstancesStarted"] == 0, (name, labels)
        assert labels["TaskCompleted"] == 1 and labels["GetTask"] == 1, (name, labels)
        assert labels["Perform"] == 2, (name, labels)  # its staging's, and its instance's


def test_a_sync_repair_event_says_what_was_repaired_and_why():
    from actors.cli.render import describe_event

    assert describe_event({"repair": "desire", "why": "the BBS lost it"}) == "repair: desire, why: the BBS lost it"
    assert describe_event({"repair": "update", "instances": 3, "was": 2}) == "instances: 3, repair: update, was: 2"
