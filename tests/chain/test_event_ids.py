"""Every distinct downstream event has a distinct id, and the same event built again (a replay or a
retried publish) keeps its id: property tests over chains, runs, VMs, event types and GC findings,
through the builders the orchestrators and the poller activity use."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_chain.events import chain_cloud_event, gc_cloud_event, snapshot_completed_event, vm_cloud_event
from backup_chain.gc import assess
from backup_chain.jobs import JobView

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIX = "BackupChain."
SUB = "00000000-0000-0000-0000-0000000000aa"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/v1"
CHAIN_TYPES = ("ChainStarted", "UpstreamReceived", "UpstreamTimedOut", "ChainSkipped", "ChainCompleted")
VM_TYPES = ("BackupTriggered", "SnapshotCompleted", "BackupCompleted", "BackupFailed")
NOW = datetime(2027, 1, 6, 10, 0, tzinfo=timezone.utc)

_chains = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,12}", fullmatch=True)
_runs = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
_vm_names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


def _vm(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"


def _chain_event(chain: str, run: str, event_type: str) -> dict[str, Any]:
    return chain_cloud_event(
        prefix=PREFIX, chain=chain, run_id=run, source="/backup-chain", event_type=event_type, time="t"
    )


def _vm_event(chain: str, run: str, vm: str, event_type: str) -> dict[str, Any]:
    spec = {"prefix": PREFIX, "chain": chain, "runId": run, "vmId": _vm(vm), "vaultId": VAULT}
    if event_type == "SnapshotCompleted":  # built by vm_backup or by the vault's poller activity
        job = JobView(job_id="job-1", status="InProgress", start_time="2027-01-06T09:00:00Z")
        return snapshot_completed_event(spec, job, "t")
    return vm_cloud_event(spec, "job-1", event_type, "t")


# Everything a chain run publishes: chain-level events and each VM's events.
_chain_events = st.tuples(st.just("chain"), _chains, _runs, st.just(""), st.sampled_from(CHAIN_TYPES))
_per_vm_events = st.tuples(st.just("vm"), _chains, _runs, _vm_names, st.sampled_from(VM_TYPES))


def _build(identity: tuple[str, str, str, str, str]) -> dict[str, Any]:
    kind, chain, run, vm, event_type = identity
    return _chain_event(chain, run, event_type) if kind == "chain" else _vm_event(chain, run, vm, event_type)


def _key(identity: tuple[str, str, str, str, str]) -> tuple[str, ...]:
    kind, chain, run, vm, event_type = identity
    return (kind, chain.lower(), run, vm.lower(), event_type)  # chain names and VM ids are case-insensitive


@SETTINGS
@given(st.lists(st.one_of(_chain_events, _per_vm_events), min_size=2, max_size=12))
def test_distinct_run_events_have_distinct_ids_and_rebuilding_keeps_them(
    identities: list[tuple[str, str, str, str, str]],
) -> None:
    ids: dict[tuple[str, ...], str] = {}
    for identity in identities:
        built = _build(identity)["id"]
        assert _build(identity)["id"] == built  # a replay builds the same id
        ids.setdefault(_key(identity), built)
        assert ids[_key(identity)] == built
    assert len(set(ids.values())) == len(ids)


@SETTINGS
@given(_chains, _chains, _runs, _vm_names, st.sampled_from(CHAIN_TYPES + VM_TYPES))
def test_two_chains_sharing_a_run_id_never_share_event_ids(
    chain_a: str, chain_b: str, run: str, vm: str, event_type: str
) -> None:
    """One upstream event matching two chains (or one window, or one HTTP runId) gives both runs
    the same run id: their events must still differ, or subscribers drop the second chain's."""
    kind = "chain" if event_type in CHAIN_TYPES else "vm"
    a, b = _build((kind, chain_a, run, vm, event_type)), _build((kind, chain_b, run, vm, event_type))
    assert (a["id"] == b["id"]) == (chain_a.lower() == chain_b.lower())


_inspections = st.fixed_dictionaries(
    {
        "protectionState": st.sampled_from(["Protected", "ProtectionStopped", "IRPending", None]),
        "schedule": st.sampled_from(
            [
                None,
                {"frequency": "Weekly", "days": ("Wednesday",), "times": ("02:00",), "time_zone": "UTC"},
                {"frequency": "Weekly", "days": (), "times": ("02:00",), "time_zone": "UTC"},
            ]
        ),
        "lastScheduledJob": st.sampled_from(
            [
                None,
                {"jobId": "j1", "status": "Completed", "startTime": "2027-01-06T02:10:00Z"},
                {"jobId": "j1", "status": "Failed", "startTime": "2027-01-06T02:10:00Z"},
                {"jobId": "j1", "status": "Completed", "startTime": "2026-12-01T02:10:00Z"},
            ]
        ),
        "instantSnapshots": st.integers(0, 20),
    }
)


@SETTINGS
@given(
    st.lists(st.sampled_from(["gc:check:20270106T0200Z", "gc:check:20270113T0200Z"]), min_size=1, max_size=2),
    st.lists(st.tuples(_vm_names, _inspections), min_size=1, max_size=4),
)
def test_every_gc_finding_has_its_own_id(gc_runs: list[str], vms: list[tuple[str, dict[str, Any]]]) -> None:
    """gc_check publishes one event per finding; a VM can have several findings of one kind
    (protection stopped and no scheduled backup are both GcOverdue)."""
    ids: dict[tuple[str, ...], str] = {}
    for gc_run in gc_runs:
        for name, inspection in vms:
            for finding in assess(inspection, NOW, 15):
                event = gc_cloud_event(
                    prefix=PREFIX,
                    source="/backup-chain",
                    gc_run=gc_run,
                    event_type=finding.kind,
                    time="t",
                    vm_id=_vm(name),
                    vault_id=VAULT,
                    finding=finding.code,
                    reason=finding.reason,
                )
                ids.setdefault((gc_run, name, finding.kind, finding.code), event["id"])
                assert ids[(gc_run, name, finding.kind, finding.code)] == event["id"]
    assert len(set(ids.values())) == len(ids)


def test_a_vm_with_two_overdue_findings_gets_two_ids() -> None:
    inspection = {"protectionState": "ProtectionStopped", "schedule": None, "lastScheduledJob": None}
    findings = assess(inspection, NOW, 15)
    assert [f.kind for f in findings] == ["GcOverdue", "GcOverdue"]
    ids = {
        gc_cloud_event(
            prefix=PREFIX,
            source="/backup-chain",
            gc_run="gc:check:20270106T0200Z",
            event_type=f.kind,
            time="t",
            vm_id=_vm("app01"),
            vault_id=VAULT,
            finding=f.code,
        )["id"]
        for f in findings
    }
    assert len(ids) == 2
