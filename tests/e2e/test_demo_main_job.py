"""The main job (``./dev run`` = ``python -m demo``) as a real subprocess: it must pass its own
checks and say so in the lines a person reads (non-interactive: plain output, no TTY)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.event_contract import assert_contract
from tests.support.main_job import run_main_job


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_main_job_runs_the_sample_chain_and_passes_its_checks(tmp_path: Path) -> None:
    events_file = tmp_path / "events.json"
    out = run_main_job("--events-out", str(events_file))
    lines = out.splitlines()

    def line_with(*parts: str) -> str:
        found = [line for line in lines if all(p in line for p in parts)]
        assert found, f"no line with {parts} in:\n{out}"
        return found[0]

    # The run waited for upstream, then took the event fired through the Event Grid emulator.
    line_with("chain", "waitingForUpstream")
    line_with("upstream published Contoso.Etl.JobFinished")
    # Plain (non-TTY) progress lines per VM, then the final table.
    line_with("file01", "failed", "ExtensionFailedVssWriterInBadState")
    line_with("sql01", "waitingForRunningJob")
    line_with("sql01", "completed", "waited out job")
    assert "\x1b[" not in out, "no terminal escape codes without a TTY"
    # Downstream events and the verdict.
    line_with("downstream events received (20")
    line_with("BackupFailed", "file01", "phase=snapshot", "errorCode=ExtensionFailedVssWriterInBadState")
    line_with("ChainCompleted", "outcome=completedWithFailures", "completed=5", "failed=1")
    line_with("note: sql01 waited out its scheduled backup")
    result = line_with("RESULT: PASS")
    assert "5/6 VMs backed up" in result and "file01 failed its snapshot" in result
    assert len(lines) < 120, "output stays modest"

    events = json.loads(events_file.read_text())
    # its stack lives outside the test session's temporary root; it sets a schema base URL (demo/stack.py)
    assert assert_contract(events, names_schema=True) == 20
    kinds = [str(e["type"]).removeprefix("BackupChain.") for e in events]
    for name in ("web01", "web02", "app01", "sql01", "etl01"):
        mine = [k for k, e in zip(kinds, events, strict=True) if str(e["subject"]).endswith("/" + name)]
        assert mine == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"], (name, mine)
    assert kinds[0] == "ChainStarted" and kinds[-1] == "ChainCompleted"
