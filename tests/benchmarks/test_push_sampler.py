"""bench push's CPU breakdown charges the loop thread's CPU where it goes.

A sampler thread sees the other threads only when it holds the GIL, which it
gets soonest where they let go of it (zlib, file I/O): it over-charged such
code (the tar writer by about 4x in a push). The loop thread is sampled in
itself, so its breakdown follows the CPU it spends.
"""

from __future__ import annotations

import io
import random
import time

from benchmarks.push import Sampler


def _text(rng: random.Random, size: int) -> bytes:
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(4000)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=64)) + b"\n"
    return bytes(out[:size])


def test_the_loop_thread_is_charged_where_its_cpu_goes_not_where_it_lets_the_gil_go():
    from actors.cell.buildpacks.semver import semver_pick
    from actors.tarstream import TarStream

    blob = _text(random.Random(5), 1 << 18)

    def compress() -> None:  # zlib: lets the GIL go while it deflates
        tar = TarStream(io.BytesIO(), 0)
        tar.file("app/data.txt", 0o644, len(blob), [blob])
        tar.close()

    versions = [f"{major}.{minor}.{patch}" for major in range(4) for minor in range(10) for patch in range(10)]

    def parse() -> None:  # plain Python: holds the GIL
        assert semver_pick("<0.0.0", versions) is None

    spent = {"tarstream": 0.0, "cell": 0.0}
    with Sampler(0.002) as sampler:
        began = time.thread_time()
        while time.thread_time() - began < 0.8:
            t0 = time.thread_time()
            compress()
            t1 = time.thread_time()
            parse()
            t2 = time.thread_time()
            spent["tarstream"] += t1 - t0
            spent["cell"] += t2 - t1
    charged = sampler.breakdown()
    for component, cpu in spent.items():
        assert 0.5 < charged.get(component, 0.0) / cpu < 2.0, (component, charged, spent)


def test_the_sampler_leaves_no_profiling_timer_behind_even_when_it_cannot_start():
    import signal

    import pytest

    before = signal.getsignal(signal.SIGPROF)
    sampler = Sampler(0.005)
    with sampler:
        assert signal.getitimer(signal.ITIMER_PROF)[1] == pytest.approx(0.005)
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    # A SIGPROF still on its way finds no default action (ending the process).
    assert signal.getsignal(signal.SIGPROF) not in (signal.SIG_DFL, sampler._on_timer)
    with pytest.raises(RuntimeError):
        sampler.__enter__()  # its thread cannot start twice
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) != sampler._on_timer
    signal.signal(signal.SIGPROF, before if before is not None else signal.SIG_DFL)
