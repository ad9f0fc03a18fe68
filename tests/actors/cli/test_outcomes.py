"""How a command ends, as its sender sees it: the exit code and the named
error of `CommandOutcome`, read from the outcome, never from printed lines.
Experiments count failures by these names, so each is driven for real."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from actors.cli.base import CliConfig
from actors.platform import Platform
from protocol.messages import CommandOutcome
from protocol.states import BuildState
from tests.actors.conftest import EXAMPLES, db, eventually

pytestmark = pytest.mark.anyio


async def _outcome(platform: Platform, *argv: str) -> tuple[CommandOutcome, list[str]]:
    lines: list[str] = []
    outcome = await platform.run_command(list(argv), lines.append, timeout=3600)
    return outcome, lines


def _app(tmp_path: Path, name: str, manifest: str) -> Path:
    src = tmp_path / name
    shutil.copytree(EXAMPLES / "python", src)
    (src / "manifest.yml").write_text(manifest)
    return src


async def test_a_command_that_succeeds_ends_with_exit_code_0_and_no_error(platform):
    outcome, lines = await _outcome(platform, "push", "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
    assert (outcome.exit_code, outcome.error) == (0, None), "\n".join(lines)
    assert outcome.lines == len(lines)


async def test_an_app_that_does_not_exist_is_app_not_found(platform):
    outcome, lines = await _outcome(platform, "app", "nope")
    assert (outcome.exit_code, outcome.error) == (1, "AppNotFound")
    assert outcome.error_line == "App 'nope' not found."
    assert lines[-1] == "FAILED"


async def test_a_staging_no_buildpack_detects_is_no_app_detected_error(platform):
    outcome, _ = await _outcome(platform, "push", "undetectable", "-p", str(EXAMPLES / "undetectable"))
    assert (outcome.exit_code, outcome.error) == (1, "NoAppDetectedError")


async def test_a_staging_whose_cell_is_lost_is_staging_error(platform):
    push = asyncio.create_task(_outcome(platform, "push", "hello", "-f", str(EXAMPLES / "python" / "manifest.yml")))

    async def staging() -> bool:
        app = await db(platform, "find_app", name="hello")
        builds = await db(platform, "list_builds", app_guid=app.guid) if app else []
        return any(b.state is BuildState.STAGING for b in builds)

    await eventually(platform, staging, every=0.05)
    await platform.faults.kill_cells(fraction=1.0)
    outcome, lines = await push
    assert (outcome.exit_code, outcome.error) == (1, "StagingError"), "\n".join(lines)
    assert outcome.error_line.startswith("StagingError - Staging error:")  # push shows the build's error


async def test_every_instance_crashing_while_starting_is_start_unsuccessful(platform, tmp_path):
    src = _app(
        tmp_path, "sick", "applications:\n- name: sick\n  memory: 64M\n  timeout: 5\n  env:\n    MF_HEALTHY: false\n"
    )
    outcome, _ = await _outcome(platform, "push", "-f", str(src / "manifest.yml"))
    assert (outcome.exit_code, outcome.error) == (1, "StartUnsuccessful")


async def test_instances_still_starting_when_cf_stops_waiting_is_start_app_timeout(make_platform, tmp_path):
    # cf waits CF_STARTUP_TIMEOUT (here 30 s) for an instance to run; the
    # health check itself allows 120 s, so the instance is still starting.
    platform = await make_platform(cli=CliConfig(start_timeout=30)).start()
    manifest = "applications:\n- name: slow\n  memory: 64M\n  timeout: 120\n  env:\n    MF_STARTUP_SECONDS: 90\n"
    outcome, _ = await _outcome(platform, "push", "-f", str(_app(tmp_path, "slow", manifest) / "manifest.yml"))
    assert (outcome.exit_code, outcome.error) == (1, "StartAppTimeout")


async def test_a_failing_blob_store_is_blobstore_unavailable(platform):
    platform.faults.blob_fault("blob.put")
    outcome, _ = await _outcome(platform, "push", "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
    assert (outcome.exit_code, outcome.error) == (1, "BlobstoreUnavailable")


async def test_a_component_that_does_not_answer_is_ask_timeout(platform):
    await _outcome(platform, "push", "hello", "-f", str(EXAMPLES / "python" / "manifest.yml"))
    assert platform.faults.pause("cloud_controller")
    outcome, lines = await _outcome(platform, "app", "hello")
    assert (outcome.exit_code, outcome.error) == (1, "AskTimeout"), "\n".join(lines)
    assert "cloud_controller" in outcome.error_line


async def test_a_usage_error_is_incorrect_usage(platform):
    outcome, _ = await _outcome(platform, "scale", "hello", "-i", "abc")
    assert (outcome.exit_code, outcome.error) == (1, "IncorrectUsage")
    outcome, _ = await _outcome(platform, "frobnicate")
    assert outcome.exit_code == 1 and outcome.error is not None


async def test_a_quota_refusal_is_named_and_changes_nothing(platform):
    outcome, _ = await _outcome(
        platform, "push", "huge", "-f", str(EXAMPLES / "python" / "manifest.yml"), "-i", "1000", "-m", "1G"
    )
    assert outcome.exit_code == 1 and outcome.error is not None and "Quota" in outcome.error
    assert await db(platform, "find_app", name="huge") is None
