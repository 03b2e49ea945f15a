"""A benchmark stopped by a signal stops the stack it started: SIGTERM (a CI timeout, ``kill``) and
Ctrl-C even when it was started in the background with SIGINT ignored, as a shell's ``cmd &``
starts it, and whether the stack is still starting or already running. Before, SIGTERM ended the
bench at once and left devhost and both emulators running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.processes import alive, stack_children

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"devhost", "recoveryservices", "eventgrid"}
SMALL = {
    "load_bench": ["--vms", "4", "--vaults", "1", "--chains", "1", "--progress", "1"],
    "chain_bench": ["--vms", "2", "--beacon-vms", "0", "--baseline-vms", "0", "--vaults", "1"],
}
RUNNING = {"load_bench": "  [", "chain_bench": "  [run 1:"}  # the first progress line: the stack is up


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a non-interactive shell does for ``cmd &``


@pytest.mark.parametrize(
    ("bench", "signum", "phase"),
    [
        ("load_bench", signal.SIGTERM, "starting"),
        ("load_bench", signal.SIGTERM, "running"),
        ("load_bench", signal.SIGINT, "running"),
        ("chain_bench", signal.SIGTERM, "running"),
        ("chain_bench", signal.SIGINT, "starting"),
    ],
)
def test_a_signalled_bench_stops_every_process_it_started(bench: str, signum: int, phase: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", f"bench.{bench}", *SMALL[bench]],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    children: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"the bench did not get to {phase}: {children}\n{''.join(lines)}"
            children = stack_children(process.pid) or children
            if set(children) == SERVICES and (phase == "starting" or any(x.startswith(RUNNING[bench]) for x in lines)):
                break
            time.sleep(0.05)
        process.send_signal(signum)
        process.wait(timeout=60)
        left = [name for name, pid in children.items() if alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        for pid in children.values():  # a failing run must not leave its stack behind either
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert process.returncode != 0, "".join(lines)  # interrupted, not a finished bench
    assert not left, f"{left} still running\n{''.join(lines)}"
