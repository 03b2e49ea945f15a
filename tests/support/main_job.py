"""Running the main job (``./dev run`` = ``python -m demo``) as a real subprocess, the way a person
does: no devhost settings inherited from the test process, no TTY, no terminal width. Its stack
lives in a temporary directory of its own, outside the test session's (tests/conftest.py), so the
events its downstream topic accepted are checked against their schemas here, on every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.event_contract import assert_contract

REPO = Path(__file__).resolve().parents[2]
EVENTS_OUT = "--events-out"


def run_main_job(*args: str, timeout: float = 140) -> str:
    """Runs the main job with ``args`` and returns its stdout, failing with both streams on a
    non-zero exit, and naming every published event that breaks its schema."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVHOST_") and k != "COLUMNS"}
    with tempfile.TemporaryDirectory(prefix="main-job-events-") as tmp:
        given = list(args)
        if EVENTS_OUT not in given:
            given += [EVENTS_OUT, str(Path(tmp) / "events.json")]
        events_file = Path(given[given.index(EVENTS_OUT) + 1])
        done = subprocess.run(
            [sys.executable, "-m", "demo", *given],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = done.stdout
        assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{out[-4000:]}\nstderr:\n{done.stderr[-2000:]}"
        # the stack sets EVENT_SCHEMA_BASE_URL (demo/stack.py): every event must name its schema
        assert_contract(json.loads(events_file.read_text()), names_schema=True, what=" by the main job")
    return out
