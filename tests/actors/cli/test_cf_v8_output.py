"""Every command's whole output, line by line and stream by stream, against
what cf v8 prints in the same situation (its layouts: `util/ui` tables,
`app_summary_displayer`, the push event stream, `DisplayError`).

Expected lines are literal but for a few placeholders: `<TIME>` an
instance's RFC 3339 `since`, `<UPLOADED>` cf's `last uploaded` date,
`<STAMP>` a log or event timestamp, `<GUID>` a guid, `<N>` a number, and a
line `...` that stands for any lines (staging output) up to the next
expected one."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.actors.conftest import EXAMPLES, run_streams

pytestmark = pytest.mark.anyio

_PLACEHOLDERS = {
    "<TIME>": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
    "<UPLOADED>": r"\w{3} \d\d \w{3} \d\d:\d\d:\d\d \w+ \d{4}",
    "<STAMP>": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d[+-]\d{4}",
    "<GUID>": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "<N>": r"\d+",
}
HEADER = "in org minifoundry / space dev as admin..."


def _pattern(line: str) -> re.Pattern[str]:
    pieces = re.split("(" + "|".join(map(re.escape, _PLACEHOLDERS)) + ")", line)
    return re.compile("".join(_PLACEHOLDERS.get(p, re.escape(p)) for p in pieces))


def assert_lines(actual: list[str], expected: list[str]) -> None:
    """Match line by line; `...` skips lines until the next expected one matches."""
    i = 0
    for n, want in enumerate(expected):
        if want == "...":
            continue
        pattern = _pattern(want)
        if n > 0 and expected[n - 1] == "...":
            while i < len(actual) and not pattern.fullmatch(actual[i]):
                i += 1
        assert i < len(actual), f"ran out of output looking for line {n}: {want!r}\n" + "\n".join(actual)
        assert pattern.fullmatch(actual[i]), f"line {i}: {actual[i]!r}\n   wanted: {want!r}\n--- output:\n" + "\n".join(
            actual
        )
        i += 1
    assert i == len(actual), "more output than expected:\n" + "\n".join(actual[i:])


def _summary(
    name: str, state: str, count: str, memory: str, rows: list[str], *, command: str | None = None
) -> list[str]:
    width = 17 if command else 16
    process = [
        "",
        "type:".ljust(width) + "web",
        "sidecars:".ljust(width),
        "instances:".ljust(width) + count,
        "memory usage:".ljust(width) + memory,
    ]
    if command:
        process.append("start command:".ljust(width) + command)
    return [
        f"name:              {name}",
        f"requested state:   {state}",
        f"routes:            {name}.apps.internal",
        "last uploaded:     <UPLOADED>",
        "stack:             cflinuxfs4",
        "buildpacks:        ",
        "\tname                   version   detect output   buildpack name",
        "\tstaticfile_buildpack   1.6.14    staticfile      staticfile",
        *process,
        *rows,
    ]


RUNNING_HEADER = "     state     since                  cpu    memory       disk        logging             cpu entitlement   details   ready"


def _running(index: int, memory: str = "64M") -> str:
    return f"#{index}   running   <TIME>   0.0%   32M of {memory}   60M of 1G   0B/s of unlimited" + " " * 31 + "true"


async def _site(platform, tmp_path):
    """The static example, pushed without its manifest (64M, one instance)."""
    src = tmp_path / "site"
    shutil.copytree(EXAMPLES / "static", src)
    (src / "manifest.yml").unlink()
    code, out, err = await run_streams(platform, "push", "site", "-p", str(src), "-m", "64M")
    assert code == 0, "\n".join(out + err)
    return src, out, err


async def test_apps_with_no_apps(platform):
    code, out, err = await run_streams(platform, "apps")
    assert (code, err) == (0, [])
    assert_lines(out, [f"Getting apps {HEADER}", "", "No apps found"])


async def test_push_of_a_new_app_without_a_manifest(platform, tmp_path):
    _, out, err = await _site(platform, tmp_path)
    assert_lines(
        out,
        [
            "Pushing app site to org minifoundry / space dev as admin...",
            "Packaging files to upload...",
            "Uploading files...",
            " <N> B / <N> B  100.00% 1s",
            "",
            "Waiting for API to complete processing files...",
            "",
            "Staging app and tracing logs...",
            "...",
            "   Exit status 0",
            "...",
            "",
            "Waiting for app site to start...",
            "",
            "",
            *_summary("site", "started", "1/1", "64M", [RUNNING_HEADER, _running(0)], command="$HOME/boot.sh"),
        ],
    )
    assert err == ["Instances starting...", "Instances starting..."]  # push's poll lines are warnings: stderr


async def test_apps_app_and_scale_with_one_app(platform, tmp_path):
    await _site(platform, tmp_path)
    code, out, err = await run_streams(platform, "apps")
    assert (code, err) == (0, [])
    assert_lines(
        out,
        [
            f"Getting apps {HEADER}",
            "",
            "name   requested state   processes   routes",
            "site   started           web:1/1     site.apps.internal",
        ],
    )
    code, out, err = await run_streams(platform, "app", "site")
    assert (code, err) == (0, [])
    body = _summary("site", "started", "1/1", "64M", [RUNNING_HEADER, _running(0)])
    assert_lines(out, [f"Showing health and status for app site {HEADER}", "", *body])
    code, out, err = await run_streams(platform, "scale", "site")
    assert (code, err) == (0, [])
    assert_lines(out, [f"Showing current scale of app site {HEADER}", "", *body])

    code, out, err = await run_streams(platform, "scale", "site", "-m", "128M", "-f")
    assert (code, err) == (0, [])
    assert_lines(
        out,
        [
            f"Scaling app site {HEADER}",
            "",
            f"Stopping app site {HEADER}",
            "",
            f"Starting app site {HEADER}",
            "",
            "Instances starting...",
            "Instances starting...",
            "",
            f"Showing current scale of app site {HEADER}",
            "",
            *_summary(
                "site",
                "started",
                "1/1",
                "128M",
                [RUNNING_HEADER.replace("memory       disk", "memory        disk"), _running(0, "128M")],
            ),
        ],
    )


async def test_a_restarting_scale_asks_first_and_a_no_cancels_it(platform, tmp_path):
    await _site(platform, tmp_path)
    question = "This will cause the app to restart. Are you sure you want to scale site? [yN]: "
    code, out, err = await run_streams(platform, "scale", "site", "-k", "2G", answers=[False])
    assert (code, err) == (0, [])
    assert out == [f"Scaling app site {HEADER}", "", question, "Scaling cancelled"]


async def test_stop_start_and_their_already_done_cases(platform, tmp_path):
    await _site(platform, tmp_path)
    code, out, err = await run_streams(platform, "stop", "site")
    assert (code, out, err) == (0, [f"Stopping app site {HEADER}", "OK", ""], [])
    code, out, err = await run_streams(platform, "stop", "site")
    assert (code, out, err) == (0, [f"Stopping app site {HEADER}", "App site is already stopped.", "OK", ""], [])
    code, out, err = await run_streams(platform, "app", "site")
    down = "#0   down    <TIME>   0.0%   0B of 0B   0B of 0B   0B/s of 0B/s" + " " * 31 + "-"
    down_header = "     state   since                  cpu    memory     disk       logging        cpu entitlement   details   ready"
    assert_lines(
        out,
        [
            f"Showing health and status for app site {HEADER}",
            "",
            *_summary("site", "stopped", "0/1", "64M", [down_header, down]),
        ],
    )
    code, out, err = await run_streams(platform, "start", "site")
    assert (code, err) == (0, [])
    assert_lines(
        out,
        [
            f"Starting app site {HEADER}",
            "",
            "Waiting for app to start...",
            "",
            "Instances starting...",
            "Instances starting...",
            "",
            *_summary("site", "started", "1/1", "64M", [RUNNING_HEADER, _running(0)]),
        ],
    )
    code, out, err = await run_streams(platform, "start", "site")
    assert (code, out, err) == (
        0,
        [f"Starting app site {HEADER}", "", "App 'site' is already started.", "OK", ""],
        [],
    )


async def test_restart_and_restage(platform, tmp_path):
    await _site(platform, tmp_path)
    code, out, err = await run_streams(platform, "restart", "site")
    assert (code, err) == (0, [])
    summary = _summary("site", "started", "1/1", "64M", [RUNNING_HEADER, _running(0)])
    assert_lines(
        out,
        [
            f"Restarting app site {HEADER}",
            "",
            "Stopping app...",
            "",
            "Waiting for app to start...",
            "",
            "Instances starting...",
            "Instances starting...",
            "",
            *summary,
        ],
    )
    code, out, err = await run_streams(platform, "restage", "site")
    assert (code, err) == (0, ["This action will cause app downtime."])
    assert_lines(
        out,
        [
            "",
            f"Restaging app site {HEADER}",
            "",
            "Staging app and tracing logs...",
            "...",
            "",
            f"Restarting app site {HEADER}",
            "",
            "Stopping app...",
            "",
            "Waiting for app to start...",
            "",
            "Instances starting...",
            "Instances starting...",
            "",
            *summary,
        ],
    )


async def test_events_and_recent_logs(platform, tmp_path):
    await _site(platform, tmp_path)
    code, out, err = await run_streams(platform, "events", "site")
    assert (code, err) == (0, [])
    assert out[0] == f"Getting events for app site {HEADER}"  # no empty line after it, as cf prints events
    assert re.fullmatch(r"time {26}event {22}actor   description", out[1]), out[1]
    assert_lines(
        out[-1:],
        [
            "<STAMP>   audit.app.create           admin   disk_quota: 1024, instances: 1, memory: 64, state: STOPPED, "
            "environment_json: [PRIVATE DATA HIDDEN]"
        ],
    )
    code, out, err = await run_streams(platform, "logs", "site", "--recent")
    assert (code, err) == (0, [])
    assert out[:2] == [f"Retrieving logs for app site {HEADER}", ""]
    assert_lines(out[2:3], ["   <STAMP> [API/0] OUT Created app with guid <GUID>"])
    assert any(re.fullmatch(r"   \S+ \[STG/0\] OUT Exit status 0", line) for line in out)
    assert any(re.fullmatch(r"   \S+ \[APP/PROC/WEB/0\] OUT .+", line) for line in out)


async def test_delete_asks_and_says_what_it_did(platform, tmp_path):
    await _site(platform, tmp_path)
    code, out, err = await run_streams(platform, "delete", "site", answers=[False])
    assert (code, out, err) == (0, ["Really delete the app site? [yN]: ", "App 'site' has not been deleted."], [])
    code, out, err = await run_streams(platform, "delete", "site", answers=[None])  # the input ended
    assert (code, out, err) == (1, ["Really delete the app site? [yN]: ", "FAILED"], ["EOF"])
    code, out, err = await run_streams(platform, "delete", "site", answers=[True])
    assert (code, out, err) == (0, ["Really delete the app site? [yN]: ", f"Deleting app site {HEADER}", "OK", ""], [])
    code, out, err = await run_streams(platform, "delete", "site", "-f")
    assert (code, out, err) == (0, [f"Deleting app site {HEADER}", "OK", ""], ["App 'site' does not exist."])


async def test_errors_go_to_stderr_and_failed_to_stdout(platform):
    code, out, err = await run_streams(platform, "app", "ghost")
    assert (code, out, err) == (
        1,
        [f"Showing health and status for app ghost {HEADER}", "", "FAILED"],
        ["App 'ghost' not found."],
    )
    code, out, err = await run_streams(platform, "stop", "ghost")
    assert (code, out, err) == (1, ["FAILED"], ["App 'ghost' not found."])  # looked up before the header
    code, out, err = await run_streams(platform, "restage", "ghost")
    assert (code, out, err) == (
        1,
        ["", f"Restaging app ghost {HEADER}", "", "FAILED"],
        ["This action will cause app downtime.", "App 'ghost' not found."],
    )
    code, out, err = await run_streams(platform, "frobnicate")
    assert (code, out, err) == (1, [], ["'frobnicate' is not a registered command. See 'cf help -a'"])
    code, out, err = await run_streams(platform, "help", "frobnicate")
    assert (code, out, err) == (1, ["FAILED"], ["'frobnicate' is not a registered command. See 'cf help -a'"])


async def test_usage_errors_print_cf_s_words_then_the_help(platform):
    app_help = [
        "NAME:",
        "   app - Display health and status for an app",
        "",
        "USAGE:",
        "   cf app APP_NAME [--guid]",
        "",
        "OPTIONS:",
        "   --guid      Retrieve and display the given app's guid.  All other health and status output for the app "
        "is suppressed.",
        "",
        "SEE ALSO:",
        "   apps, events, logs, push",
    ]
    code, out, err = await run_streams(platform, "app")
    assert (code, err) == (1, ["Incorrect Usage: the required argument `APP_NAME` was not provided", ""])
    assert out == app_help  # go-flags' errors: no FAILED
    code, out, err = await run_streams(platform, "app", "one", "two")
    assert (code, err) == (1, ['Incorrect Usage: unexpected argument "two"'])
    assert out == ["FAILED", "", *app_help]  # cf's own check: FAILED, then the help
    code, out, err = await run_streams(platform, "app", "one", "--color")
    assert (code, err) == (1, ["Incorrect Usage: unknown flag `color'", ""])
    code, out, err = await run_streams(platform, "scale", "x", "-i")
    assert (code, err) == (1, ["Incorrect Usage: expected argument for flag `-i, --instances'", ""])
    code, out, err = await run_streams(platform, "scale", "x", "-i", "abc")
    assert (code, err) == (1, ["Incorrect Usage: invalid argument for flag '-i' (expected int > 0)", ""])
    code, out, err = await run_streams(platform, "push", "x", "-m", "lots")
    assert err[0] == "Incorrect Usage: Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB"
    code, out, err = await run_streams(platform, "push", "x", "-u", "tcp")
    assert err[0] == 'Incorrect Usage: HEALTH_CHECK_TYPE must be "port", "process", or "http"'
    code, out, err = await run_streams(platform, "push", "x", "-t", "0")
    assert err[0] == "Incorrect Usage: Value must be greater than or equal to 1."
    code, out, err = await run_streams(platform, "push", "x", "-p", "no/such/dir")
    assert err[0] == "Incorrect Usage: The specified path 'no/such/dir' does not exist."
    code, out, err = await run_streams(platform, "app", "-h")
    assert (code, out, err) == (0, app_help, [])


async def test_push_with_a_manifest_shows_cfs_diff_then_applies_it(platform, tmp_path):
    src = tmp_path / "site"
    shutil.copytree(EXAMPLES / "static", src)
    (src / "manifest.yml").write_text("applications:\n- name: site\n  memory: 64M\n  instances: 1\n")
    code, out, err = await run_streams(platform, "push", cwd=src)
    assert code == 0, "\n".join(out + err)
    assert out[:11] == [
        "Pushing app site to org minifoundry / space dev as admin...",
        f"Applying manifest file {src / 'manifest.yml'}...",
        "",
        "Updating with these attributes...",
        "  ---",
        "  applications:",
        "+ - name: site",
        "+   instances: 1",
        "    memory: 64M",  # cf's server never diffs memory
        "+   default-route: true",
        "Manifest applied",
    ]
    (src / "manifest.yml").write_text("applications:\n- name: site\n  memory: 64M\n  instances: 2\n")
    code, out, err = await run_streams(platform, "push", cwd=src)
    assert code == 0, "\n".join(out + err)
    assert out[4:11] == [
        "  ---",
        "  applications:",
        "  - name: site",
        "-   instances: 1",
        "+   instances: 2",
        "    memory: 64M",
        "+   default-route: true",
    ]
    assert out[11] == "Manifest applied"
    assert out[12] == "All files found in remote cache; nothing to upload."


async def test_a_manifest_of_two_apps_announces_both_once(platform, tmp_path):
    root = tmp_path / "two"
    shutil.copytree(EXAMPLES / "static", root / "a")
    shutil.copytree(EXAMPLES / "static", root / "b")
    for d in ("a", "b"):
        (root / d / "manifest.yml").unlink()
    (root / "manifest.yml").write_text(
        "applications:\n- name: one\n  path: a\n  memory: 64M\n- name: two\n  path: b\n  memory: 64M\n"
    )
    code, out, err = await run_streams(platform, "push", cwd=root)
    assert code == 0, "\n".join(out + err)
    assert out[0] == "Pushing apps one, two to org minifoundry / space dev as admin..."
    assert out.count("Manifest applied") == 1
    assert "Waiting for app one to start..." in out and "Waiting for app two to start..." in out
    assert out.index("name:              one") < out.index("Waiting for app two to start...")
    code, out, err = await run_streams(platform, "push", "-i", "2", cwd=root)
    assert code == 1
    assert err == [
        "Incorrect Usage: Command line flags (except -f and --no-start) cannot be applied when pushing "
        "multiple apps from a manifest file."
    ]
    assert out[:2] == ["FAILED", ""]


async def test_a_procfiles_other_process_types_are_listed_with_no_instances(platform, tmp_path):
    src = tmp_path / "worker"
    shutil.copytree(EXAMPLES / "python", src)
    (src / "manifest.yml").unlink()
    (src / "Procfile").write_text("web: python app.py\nworker: python worker.py\n")
    code, out, err = await run_streams(platform, "push", "jobs", "-p", str(src), "-m", "64M")
    assert code == 0, "\n".join(out + err)
    assert out[-7:] == [
        "",
        "type:            worker",
        "sidecars:        ",
        "instances:       0/0",
        "memory usage:    1024M",
        "start command:   python worker.py",
        "There are no running instances of this process.",
    ], "\n".join(out)
    code, out, err = await run_streams(platform, "apps")
    assert out[-1].split()[:3] == ["jobs", "started", "web:1/1,"] and out[-1].split()[3] == "worker:0/0"
