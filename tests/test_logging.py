"""The platform's log file stays bounded: one past `LOG_ROTATE_BYTES` when a
process opens it is moved aside (replacing the last one moved)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _open_log(log: Path) -> None:
    code = (
        "import sys, pathlib, structlog; sys.path.insert(0, sys.argv[1]); import run; "
        "run.configure_logging(log_file=pathlib.Path(sys.argv[2])); "
        "structlog.get_logger().info('opened')"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(log)], check=True, timeout=60)


def test_a_log_past_its_bound_is_moved_aside_when_opened(tmp_path):
    import run

    log = tmp_path / "experiment.log"
    with log.open("wb") as f:
        f.truncate(run.LOG_ROTATE_BYTES + 1)  # sparse: no real disk
    (tmp_path / "experiment.log.1").write_text("the oldest\n")

    _open_log(log)

    assert (tmp_path / "experiment.log.1").stat().st_size == run.LOG_ROTATE_BYTES + 1
    assert '"event": "opened"' in log.read_text()
    # Under the bound it is appended to.
    _open_log(log)
    assert log.read_text().count('"event": "opened"') == 2
