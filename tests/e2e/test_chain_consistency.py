"""BackupCompleted reports the restore point's consistency type (docs/domain.md)."""

from __future__ import annotations

from pathlib import Path

from harness.chain_stack import chain, running_stack, scenario, types_for, vm


def test_backup_completed_carries_the_restore_points_consistency(tmp_path: Path) -> None:
    vms = [
        vm("lin01"),
        vm("lin02", preScripts=True),
        vm("win01", os="Windows"),
        vm("off01", os="Windows", powerState="deallocated"),
    ]
    with running_stack(tmp_path, scenario(vms), [chain("c", ["lin01", "lin02", "win01", "off01"])]) as stack:
        assert stack.api("POST", "chains/c/runs", {"runId": "k1"}).status_code == 202
        stack.run_until(lambda: "ChainCompleted" in types_for(stack.downstream()), step=60, what="run")
        completed = {
            str(e["subject"]).rsplit("/", 1)[-1]: e["data"]
            for e in stack.downstream()
            if str(e["type"]).endswith("BackupCompleted")
        }
        assert {name: data["consistency"] for name, data in completed.items()} == {
            "lin01": "FileSystemConsistent",
            "lin02": "AppConsistent",
            "win01": "AppConsistent",
            "off01": "CrashConsistent",
        }
        assert all(data["recoveryPoint"] for data in completed.values())
