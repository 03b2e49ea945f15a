"""Large runs fan out through vm_batch sub-orchestrations and still back up every VM once."""

from __future__ import annotations

from pathlib import Path

from harness.chain_stack import chain, running_stack, scenario, types_for, vm
from orchestrators.chain_run import BATCH_SIZE


def test_a_run_larger_than_one_batch_backs_up_every_vm_once(tmp_path: Path) -> None:
    names = [f"b{i:03d}" for i in range(BATCH_SIZE + 7)]
    vms = [vm(n, snapshot=(6, 7), transfer=(10, 12)) for n in names]
    config = chain("big", names, maxParallel=30, staggerSeconds=0, monitorTransfer=False)
    with running_stack(tmp_path, scenario(vms), [config]) as stack:
        assert stack.api("POST", "chains/big/runs", {"runId": "big1"}).status_code == 202
        stack.run_until(
            lambda: "ChainCompleted" in types_for(stack.downstream()), step=60, limit=4 * 3600, what="large run"
        )
        events = stack.downstream()
        snapshots = [e for e in events if str(e["type"]).endswith("SnapshotCompleted")]
        assert sorted(str(e["subject"]).rsplit("/", 1)[-1] for e in snapshots) == names
        jobs = stack.admin("recoveryservices", "GET", "/admin/jobs")
        job_list = jobs.get("jobs", jobs) if isinstance(jobs, dict) else jobs
        assert len(job_list) == len(names)  # one on-demand job per VM
        completed = [e for e in events if str(e["type"]).endswith("ChainCompleted")][-1]
        assert completed["data"]["outcome"] == "completed"
        assert completed["data"]["counts"] == {"snapshotCompleted": len(names)}
        run = stack.api("GET", "chains/big/runs/big1").json()
        assert len(run["vms"]) == len(names)
        assert len(str(run["custom"])) < 4000  # custom status stays small however many VMs
