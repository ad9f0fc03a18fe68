"""The platform as a background process: `up`, `down`, and the start a
one-shot command makes when nothing serves its data dir yet.

`up` runs `python run.py serve` detached: a new session, stdin from
/dev/null, stdout and stderr appended to `<data-dir>/serve.log`, so whoever
started it (`out=$(python run.py apps)` in a script) never waits on it. The
child reports on a pipe whether it serves (or why it could not start), so a
start never hangs: it ends within `START_TIMEOUT` with the server's own words
or with a pointer to `serve.log`.

Files in the data dir, besides the platform's own:

    platform.json   written by serve once it serves: its pid, API URL and
                    socket; removed when it stops (owner-only, by rename)
    serve.log       the background serve's stdout and stderr (owner-only)
    start.lock      held while a client starts a serve, so that two clients
                    starting at once start one platform
    repl.sock       the attach socket (see `attach`)

Standard library only, and no asyncio: a one-shot command against a running
platform should cost little more than Python's own start-up.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_API_PORT",
    "START_TIMEOUT",
    "StartFailed",
    "api_port_of",
    "connect",
    "down",
    "login_lines",
    "read_state",
    "remove_state",
    "request_info",
    "serve_log_path",
    "socket_path",
    "start_in_background",
    "state_path",
    "stop_hint",
    "up",
    "write_state",
]

#: The API's port when neither --api-port nor MINIFOUNDRY_API_PORT names one.
DEFAULT_API_PORT = 9022
#: Real seconds a client waits for a background serve to start (or to stop).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
#: The attach protocol's version a client speaks (see `attach`).
PROTOCOL = 1

# A unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100


# --- where things are ---------------------------------------------------------------------------


def socket_path(data_dir: Path | str) -> Path:
    """`<data-dir>/repl.sock`; for a data dir whose path is too long for a
    socket, a short one in an owner-only temp folder, named by the data dir."""
    path = Path(data_dir) / "repl.sock"
    if len(os.fsencode(os.path.abspath(path))) <= _MAX_SOCKET_PATH:
        return path
    import hashlib
    import tempfile

    real = os.path.realpath(data_dir)
    folder = Path(tempfile.gettempdir()) / f"minifoundry-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(real.encode()).hexdigest()[:24]}.sock"


def state_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "platform.json"


def serve_log_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "serve.log"


def _q(data_dir: Path | str) -> str:
    return shlex.quote(str(data_dir))


def stop_hint(data_dir: Path | str) -> str:
    return f"python run.py --data-dir {_q(data_dir)} down"


def login_lines(info: dict[str, Any]) -> list[str]:
    """How to reach the serving platform (`info`, as it describes itself)
    from the cf CLI: the one place these lines are made."""
    api_url = info.get("api_url")
    if not api_url:
        return ["API endpoint: none (this platform serves no HTTP API)"]
    password_file = info.get("admin_password_file")
    if password_file:
        where = f"password: in {password_file}"
    else:
        where = "password: the one MINIFOUNDRY_ADMIN_PASSWORD gave at its first start"
    return [
        f"API endpoint: {api_url}",
        "Log in with cf:",
        f"  cf api {api_url}",
        f"  cf login -u admin        ({where})",
    ]


# --- the state file -----------------------------------------------------------------------------


def read_state(data_dir: Path | str) -> dict[str, Any] | None:
    """What the serving process wrote to `platform.json`, or None."""
    try:
        state = json.loads(state_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(data_dir: Path | str, state: dict[str, Any]) -> None:
    """Write `platform.json` owner-only, all at once (a temp file renamed)."""
    path = state_path(data_dir)
    tmp = path.with_name(f".platform.json.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (json.dumps(state, indent=2) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_state(data_dir: Path | str, pid: int) -> None:
    """Remove `platform.json` if process `pid` wrote it."""
    state = read_state(data_dir)
    if state is not None and state.get("pid") == pid:
        with contextlib.suppress(FileNotFoundError):
            state_path(data_dir).unlink()


# --- talking to a serving process ---------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def hello() -> dict[str, Any]:
    return {"cwd": os.getcwd(), "terminal": False, "pid": os.getpid(), "protocol": PROTOCOL}


def connect(data_dir: Path | str, timeout: float | None = None) -> socket.socket | None:
    """A connection to the process serving `data_dir`, or None if none does.
    PermissionError if the socket is another user's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(socket_path(data_dir)))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise
    return sock


def request_info(data_dir: Path | str, timeout: float = 10.0) -> dict[str, Any] | None:
    """What the serving process says about itself (pid, API URL, ...), or
    None if nothing serves `data_dir` (or it does not answer in time)."""
    try:
        sock = connect(data_dir, timeout=timeout)
    except PermissionError:
        return None
    if sock is None:
        return None
    with sock:
        try:
            sock.sendall(encode({"hello": hello(), "info": True}))
            with sock.makefile("rb") as reader:
                reply = json.loads(reader.readline() or b"{}")
        except (OSError, ValueError):
            return None
    info = reply.get("info") if isinstance(reply, dict) else None
    return info if isinstance(info, dict) else None


# --- starting one -------------------------------------------------------------------------------


class StartFailed(Exception):
    """The background serve did not start: `lines` say why (the server's own
    words when it could say them), `code` names the error if it had a name."""

    def __init__(self, lines: list[str], code: str | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


def api_port_of(args: Any) -> tuple[int, bool]:
    """The API port to serve on, and whether the command line chose it
    (--api-port; else MINIFOUNDRY_API_PORT, else 9022, which an implicit
    start may trade for a free port when it is taken)."""
    explicit = getattr(args, "api_port", None) is not None
    if explicit:
        port = int(args.api_port)
    else:
        raw = os.environ.get("MINIFOUNDRY_API_PORT", "").strip()
        try:
            port = int(raw) if raw else DEFAULT_API_PORT
        except ValueError:
            raise SystemExit(f"run.py: MINIFOUNDRY_API_PORT must be a port number, not {raw!r}") from None
    if not 0 <= port <= 65535:
        raise SystemExit(f"run.py: the API port must be between 0 and 65535, not {port}")
    return port, explicit


def start_in_background(args: Any, *, implicit: bool) -> tuple[dict[str, Any], bool]:
    """Start `serve` on `args.data_dir` in the background and wait until it
    serves; its info, and False if another client had started it meanwhile.
    StartFailed says why it could not start."""
    data_dir = Path(args.data_dir)
    port, explicit = api_port_of(args)
    with _start_lock(data_dir):
        info = request_info(data_dir)
        if info is not None:
            return info, False
        try:
            return _spawn_and_wait(args, port), True
        except StartFailed as exc:
            if not (implicit and not explicit and exc.code == "ApiPortInUse" and port != 0):
                raise
        return _spawn_and_wait(args, 0), True  # the default port is someone else's: any free one


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    """Held while this client starts a serve. Without a usable data dir there
    is no lock to take: the serve that is started says what is wrong."""
    import fcntl

    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(data_dir / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + START_TIMEOUT + 10
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    break  # go on without it: the data dir's own lock still decides
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # and the lock with it


def _run_py() -> list[str]:
    here = Path(__file__).resolve().parents[2] / "run.py"
    return [str(here)] if here.is_file() else ["-m", "run"]


def _open_serve_log(data_dir: Path) -> tuple[int | None, int]:
    """`serve.log`, opened for appending (owner-only), and its size now."""
    try:
        fd = os.open(serve_log_path(data_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return None, 0
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return fd, os.fstat(fd).st_size


def _spawn_and_wait(args: Any, port: int) -> dict[str, Any]:
    import subprocess

    data_dir = Path(args.data_dir)
    log_fd, offset = _open_serve_log(data_dir)
    if log_fd is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(log_fd, f"--- {stamp} starting minifoundry serve (API port {port or 'any free one'})\n".encode())
        offset = os.fstat(log_fd).st_size  # what the child says comes after this line
    ready_r, ready_w = os.pipe()
    argv = [
        sys.executable,
        *_run_py(),
        "--data-dir",
        os.path.abspath(data_dir),
        "--cells",
        str(args.cells),
        "--zones",
        str(args.zones),
        "--seed",
        str(args.seed),
        "--speed",
        repr(float(args.speed)),
        "--api-port",
        str(port),
        *(["--debug"] if getattr(args, "debug", False) else []),
        "serve",
        "--ready-fd",
        str(ready_w),
    ]
    sink: int = log_fd if log_fd is not None else subprocess.DEVNULL
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            pass_fds=(ready_w,),
            start_new_session=True,  # Ctrl-C at the caller's terminal is not for it
            cwd="/",  # it must not hold the caller's directory
            close_fds=True,
        )
    finally:
        os.close(ready_w)
        if log_fd is not None:
            os.close(log_fd)
    try:
        report = _read_report(ready_r, START_TIMEOUT)
    finally:
        os.close(ready_r)
    log = serve_log_path(data_dir)
    if report is None:  # it said nothing in time
        if child.poll() is None:
            child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(STOP_TIMEOUT)
            raise StartFailed(
                [f"minifoundry did not start within {START_TIMEOUT:.0f} s (it was stopped); see {log}"], "StartTimeout"
            )
        report = {}
    if "ready" not in report:
        try:
            code = child.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        lines = [str(x) for x in report.get("lines", [])] or _tail(log, offset)
        if not lines:
            lines = ["minifoundry could not start, and said nothing"]
        if "error" not in report:
            lines.append(f"(minifoundry serve exited with status {code}; its output is in {log})")
        raise StartFailed(lines, report.get("code"))
    info: dict[str, Any] = report["ready"]
    _wait_until_answering(data_dir, info, log)
    return info


def _read_report(fd: int, timeout: float) -> dict[str, Any] | None:
    """The child's one JSON line on the ready pipe; {} when it closed the pipe
    without one (it died); None when it said nothing within `timeout`."""
    import select

    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        report = json.loads(data.split(b"\n", 1)[0] or b"{}")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _tail(path: Path, offset: int, lines: int = 20) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _wait_until_answering(data_dir: Path, info: dict[str, Any], log: Path) -> None:
    """Until the attach socket answers and the API answers `GET /`."""
    import http.client
    import urllib.parse

    deadline = time.monotonic() + START_TIMEOUT
    api_url = info.get("api_url")
    while True:
        answering = request_info(data_dir, timeout=5) is not None
        if answering and api_url:
            url = urllib.parse.urlsplit(api_url)
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=5)
            try:
                conn.request("GET", "/")
                answering = conn.getresponse().status == 200
            except OSError:
                answering = False
            finally:
                conn.close()
        if answering:
            return
        if time.monotonic() > deadline:
            raise StartFailed([f"minifoundry started but does not answer; see {log}"], "StartTimeout")
        time.sleep(0.05)


# --- up and down --------------------------------------------------------------------------------


def _describe(info: dict[str, Any]) -> str:
    api = info.get("api_url") or "no API"
    return f"pid {info.get('pid')}, {info.get('cells')} cells in {info.get('zones')} zones, API {api}"


def up(args: Any) -> int:
    """`python run.py up`: start serving the data dir in the background."""
    if len(args.command) > 1:
        print(f"up takes no arguments (got: {shlex.join(args.command[1:])})", file=sys.stderr)
        return 2
    data_dir = args.data_dir
    api_port_of(args)  # a bad port is refused before anything starts
    info = request_info(data_dir)
    started = False
    if info is None:
        try:
            info, started = start_in_background(args, implicit=False)
        except StartFailed as exc:
            for line in exc.lines:
                print(line, file=sys.stderr)
            return 1
    if started:
        print(
            f"minifoundry serves {data_dir} in the background ({_describe(info)}); its output: {serve_log_path(data_dir)}"
        )
    else:
        print(f"minifoundry already serves {data_dir} ({_describe(info)}).")
    for line in login_lines(info):
        print(line)
    print(f"Stop it with: {stop_hint(data_dir)}")
    return 0


def down(args: Any) -> int:
    """`python run.py down`: stop the platform serving the data dir (SIGTERM,
    then wait until it has exited and the data dir's lock is free)."""
    import signal

    if len(args.command) > 1:
        print(f"down takes no arguments (got: {shlex.join(args.command[1:])})", file=sys.stderr)
        return 2
    data_dir = args.data_dir
    info = request_info(data_dir)
    if info is None or not isinstance(info.get("pid"), int):
        state = read_state(data_dir)
        if state is not None and isinstance(state.get("pid"), int) and not _alive(state["pid"]):
            with contextlib.suppress(OSError):
                state_path(data_dir).unlink()  # left by a serve that was killed
        holder = None if _lock_free(Path(data_dir)) else _lock_holder(Path(data_dir))
        if holder is None:
            print(f"No minifoundry serves {data_dir}.")
            return 0
        # It answers no more but still holds the data dir: it is stopping.
        pid: int = holder
        print(f"minifoundry for {data_dir} (pid {pid}) is stopping; waiting for it...", flush=True)
    else:
        pid = info["pid"]
        print(f"Stopping minifoundry for {data_dir} (pid {pid})...", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) or not _lock_free(Path(data_dir)):
        if time.monotonic() > deadline:
            print(
                f"minifoundry (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s; see {serve_log_path(data_dir)}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.05)
    print("Stopped.")
    return 0


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    state = stat[stat.rfind(b")") + 2 :][:1]  # the field after the command's (parenthesised) name
    return state != b"Z"


def _lock_holder(data_dir: Path) -> int | None:
    """The pid the data dir's lock file names, if that process runs."""
    try:
        text = (data_dir / "lock").read_text(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and _alive(int(text)) else None


def _lock_free(data_dir: Path) -> bool:
    """Whether no process holds the data dir's lock (taken and let go at once)."""
    import fcntl

    try:
        fd = os.open(data_dir / "lock", os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
