"""Running the main job (``./dev run`` = ``python -m demo``) as a real subprocess, the way a person
does: no devhost settings inherited from the test process, no TTY, no terminal width."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_main_job(*args: str, timeout: float = 140) -> str:
    """Runs the main job with ``args`` and returns its stdout, failing with both streams on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVHOST_") and k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{out[-4000:]}\nstderr:\n{done.stderr[-2000:]}"
    return out
