"""One chain run end to end on devhost + both emulators (the e2e suites build on this)."""

from __future__ import annotations

from pathlib import Path

from harness.chain_stack import chain, running_stack, scenario, types_for, vm


def test_http_started_run_backs_up_and_reports_each_vm_in_order(tmp_path: Path) -> None:
    with running_stack(
        tmp_path, scenario([vm("app01"), vm("app02", os="Windows")]), [chain("nightly", ["app01", "app02"])]
    ) as stack:
        assert stack.api("POST", "chains/nightly/runs", {"runId": "r1"}).status_code == 202
        stack.run_until(lambda: "ChainCompleted" in types_for(stack.downstream()), step=30, what="chain to complete")
        events = stack.downstream()
        for name in ("app01", "app02"):
            assert types_for(events, name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
        assert types_for(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
        run = stack.api("GET", "chains/nightly/runs/r1").json()
        assert run["outcome"] == "completed"
        assert {v["phase"] for v in run["vms"]} == {"completed"}
