"""A chain over vaults in two subscriptions: the app reads each vault's subscription from its
resource id and drives it through its own SDK client; the emulator serves each vault under its own
subscription (scenario ``vaults[].subscriptionId``)."""

from __future__ import annotations

from pathlib import Path

from demo.stack import SUBSCRIPTION
from harness.chain_stack import WEEKLY, running_stack, types_for, vm

OTHER = "00000000-0000-0000-0000-0000000000bb"


def _ids(subscription: str, vault: str, vm_name: str) -> tuple[str, str]:
    return (
        f"/subscriptions/{subscription}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/{vault}",
        f"/subscriptions/{subscription}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{vm_name}",
    )


def test_one_chain_backs_up_vms_in_two_subscriptions(tmp_path: Path) -> None:
    vaults = [
        {"resourceGroup": "rg-backup", "name": "v-home", "policies": [WEEKLY], "vms": [vm("home01")]},
        {
            "subscriptionId": OTHER,
            "resourceGroup": "rg-backup",
            "name": "v-other",
            "policies": [WEEKLY],
            "vms": [vm("other01")],
        },
    ]
    body = {"subscriptionId": SUBSCRIPTION, "seed": 7, "vaults": vaults}
    home_vault, home_vm = _ids(SUBSCRIPTION, "v-home", "home01")
    other_vault, other_vm = _ids(OTHER, "v-other", "other01")
    chain = {
        "name": "both",
        "targets": [{"vaultId": home_vault, "vms": [home_vm]}, {"vaultId": other_vault, "vms": [other_vm]}],
        "snapshotMinutes": [6, 8],
    }
    with running_stack(tmp_path, body, [chain]) as stack:
        assert stack.api("POST", "chains/both/runs", {"runId": "r1"}).status_code == 202
        stack.run_until(lambda: "ChainCompleted" in types_for(stack.downstream()), step=30, what="chain to complete")
        events = stack.downstream()
        for name in ("home01", "other01"):
            assert types_for(events, name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
        sources = {str(e["subject"]).rsplit("/", 1)[-1]: e["source"] for e in events if "BackupCompleted" in e["type"]}
        assert sources == {"home01": home_vault, "other01": other_vault}
        # the emulator's own record: one on-demand job per VM, each in its own subscription's vault
        counts = stack.admin("recoveryservices", "GET", "/admin/throttling")["subscriptions"]
        assert set(counts) == {SUBSCRIPTION, OTHER}
        for name in ("home01", "other01"):
            jobs = stack.admin("recoveryservices", "GET", "/admin/jobs", params={"vm": name})
            assert [j["userTriggered"] for j in jobs] == [True]
        assert stack.api("GET", "chains/both/runs/r1").json()["outcome"] == "completed"
