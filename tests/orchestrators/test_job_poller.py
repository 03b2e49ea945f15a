"""``job_poller``: the vault's eternal poller takes due reads from its ``job_watch`` board within
the read budget, reads them in one ``poll_jobs`` call, hands finished watches back with the next
take (with the snapshot durations the reads showed, which plan the VM's next watch), survives a
failed round, and continues as new carrying its count."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup_chain.ids import resource_hash
from tests.support.activity_script import fails, ok
from tests.support.orchestrator_tier import PLAN, OrchestratorTier, custom, moment, status_input, vault_id, vm_id


def _watch(tier: OrchestratorTier, vault: str, key: str, vm: str | None = None, ran: float = 0.0) -> None:
    """Register a snapshot watch as vm_backup does (its first read is due 270 s on, see PLAN);
    with ``vm``, it announces SnapshotCompleted for that VM as vm_backup's snapshot watches do;
    ``ran``: seconds the job has run already."""
    announce = None if vm is None else {"chain": "c", "runId": "r", "vmId": vm_id(vm), "vaultId": vault_id(vault)}
    watch = {
        "key": key,
        "owner": f"vm:{key}",
        "event": "job:snapshot",
        "vaultId": vault_id(vault),
        "jobId": f"job-{key}",
        "until": "snapshot",
        "anchor": tier.now().timestamp() - ran,
        "plan": PLAN,
        "announce": announce,
    }
    tier.signal("job_watch", resource_hash(vault_id(vault)), "watch", {"watch": watch, "now": tier.now().timestamp()})
    tier.settle()


def _spec(vault: str) -> dict[str, Any]:
    return {"vaultId": vault_id(vault), "readsPerMinute": 1, "tickSeconds": 5, "fingerprint": f"fp-{vault}"}


def test_due_reads_are_taken_within_the_budget_and_finished_watches_handed_back(tier: OrchestratorTier) -> None:
    vault, poller = "vault-poller", "poller:t1"
    for key in ("w-a", "w-b"):
        _watch(tier, vault, key)
    tier.script.on("poll_jobs", vault, ok({"finished": ["w-a"], "read": 1}), ok({"finished": ["w-b"], "read": 1}))
    registered = tier.now()
    tier.begin("job_poller", poller, _spec(vault))
    tier.drive(poller, lambda s: custom(s, "reads") == 2)
    polls = tier.script.requests("poll_jobs", vault)
    assert _polled_keys(tier, vault) == [["w-a"], ["w-b"]]  # one read a minute
    at = [moment(p["at"]) for p in polls]
    assert at[0] - registered == timedelta(seconds=270) and at[1] - at[0] == timedelta(seconds=60)
    # Finished watches leave the board with the next take: nothing is read again.
    tier.drive(poller, lambda s: custom(s, "watching") == 0)
    # Ten rounds per execution, then continue-as-new carrying the reads.
    tier.drive(poller, lambda s: status_input(s).get("reads") == 2)
    assert len(tier.script.requests("poll_jobs", vault)) == 2
    tier.terminate(poller)


def test_a_failed_read_round_is_tried_again_on_the_next_due_read(tier: OrchestratorTier) -> None:
    vault, poller = "vault-pollfail", "poller:t2"
    _watch(tier, vault, "w-fail")
    tier.script.on("poll_jobs", vault, fails("NetworkError", "reset"), ok({"finished": ["w-fail"], "read": 1}))
    tier.begin("job_poller", poller, _spec(vault))
    status = tier.drive(poller, lambda s: custom(s, "reads") == 1)
    assert status["runtimeStatus"] == "Running"  # a failed round does not end the poller
    assert _polled_keys(tier, vault) == [["w-fail"]] * 2
    tier.terminate(poller)


def _hint(tier: OrchestratorTier, vault: str, vm: str) -> dict[str, Any]:
    """What triggers/beacon.py does first for a valid beacon (and only, for a woken poller): hint
    the vault's board."""
    hint = {"vmId": vm_id(vm), "at": tier.now().timestamp(), "beaconId": f"b-{vm}"}
    tier.signal("job_watch", resource_hash(vault_id(vault)), "hint", hint)
    tier.settle()
    return hint


def _beacon(tier: OrchestratorTier, vault: str, poller: str, vm: str) -> None:
    """What triggers/beacon.py does for a valid beacon to a listening poller: hint, then wake it."""
    tier.raise_event(poller, "hint", _hint(tier, vault, vm))


def _polled_keys(tier: OrchestratorTier, vault: str) -> list[list[str]]:
    """The watch keys of each ``poll_jobs`` call, in order."""
    return [[w["key"] for w in p["watches"]] for p in tier.script.requests("poll_jobs", vault)]


def _two_snapshots_polled(tier: OrchestratorTier, vault: str, poller: str, **spec: Any) -> dict[str, Any]:
    """Watches w-first (vm-first) and w-later (vm-later), each finished by its first read; the
    poller started with ``spec`` over the defaults and asleep with both on its board."""
    _watch(tier, vault, "w-first", vm="vm-first")
    _watch(tier, vault, "w-later", vm="vm-later")
    tier.script.on(
        "poll_jobs", vault, ok({"finished": ["w-first"], "read": 1}), ok({"finished": ["w-later"], "read": 1})
    )
    tier.begin("job_poller", poller, {**_spec(vault), "readsPerMinute": 60, **spec})
    return tier.drive(poller, lambda s: custom(s, "watching") == 2)


def test_a_beacon_wakes_the_poller_to_read_the_vm_s_job_at_once_then_densely(tier: OrchestratorTier) -> None:
    vault, poller = "vault-beacon", "poller:t3"
    _watch(tier, vault, "w-linux", vm="vm-linux")
    _watch(tier, vault, "w-other", vm="vm-other")
    tier.script.on("poll_jobs", vault, ok({"finished": [], "read": 1}), ok({"finished": ["w-linux"], "read": 1}))
    registered = tier.now()
    tier.begin("job_poller", poller, {**_spec(vault), "readsPerMinute": 60})
    tier.drive(poller, lambda s: custom(s, "watching") == 2)  # asleep until its next planned wake
    _beacon(tier, vault, poller, "vm-linux")
    tier.drive(poller, lambda s: custom(s, "reads") == 2)
    polls = tier.script.requests("poll_jobs", vault)
    assert _polled_keys(tier, vault) == [["w-linux"], ["w-linux"]]
    at = [moment(p["at"]) for p in polls]
    assert at[0] == registered  # at once, not 270 s on as planned (the clock did not move)
    assert at[1] - at[0] == timedelta(seconds=5)  # densely: the hint's 2 s, spaced by the 5 s tick
    tier.terminate(poller)


def test_once_woken_the_poller_takes_a_later_beacon_s_hint_within_a_tick_without_a_wake(
    tier: OrchestratorTier,
) -> None:
    vault, poller = "vault-woken", "poller:t7"
    status = _two_snapshots_polled(tier, vault, poller)
    assert custom(status, "woken") is False  # listening: a beacon raises the wake
    _beacon(tier, vault, poller, "vm-first")
    status = tier.drive(poller, lambda s: custom(s, "reads") == 1)
    assert custom(status, "woken") is True
    assert moment(custom(status, "wake")) - moment(custom(status, "at")) <= timedelta(seconds=5)
    # What triggers/beacon.py does for a woken poller: the hint signal only, no wake raised.
    hinted = tier.now()
    _hint(tier, vault, "vm-later")
    tier.drive(poller, lambda s: custom(s, "reads") == 2)
    polls = tier.script.requests("poll_jobs", vault)
    assert _polled_keys(tier, vault) == [["w-first"], ["w-later"]]
    assert moment(polls[1]["at"]) - hinted <= timedelta(seconds=5)  # within a tick, not at its 270 s plan
    # The woken execution ends after its ten rounds; the next one listens for a wake again.
    status = tier.drive(poller, lambda s: custom(s, "woken") is False)
    assert status_input(status).get("reads") == 2
    tier.terminate(poller)


def test_with_a_tick_longer_than_5_s_a_woken_poller_continues_as_new_to_listen_again(tier: OrchestratorTier) -> None:
    vault, poller = "vault-longtick", "poller:t8"
    _two_snapshots_polled(tier, vault, poller, tickSeconds=30)
    started = tier.now()
    _beacon(tier, vault, poller, "vm-first")
    status = tier.drive(poller, lambda s: custom(s, "reads") == 1 and custom(s, "phase") == "polling")
    # Without a wakeless tick of its own, it listens again: a second beacon's wake reads at once,
    # not up to 30 s later.
    assert custom(status, "woken") is False
    _beacon(tier, vault, poller, "vm-later")
    tier.drive(poller, lambda s: custom(s, "reads") == 2)
    polls = tier.script.requests("poll_jobs", vault)
    assert _polled_keys(tier, vault) == [["w-first"], ["w-later"]]
    assert [moment(p["at"]) for p in polls] == [started, started]  # the clock did not move
    tier.terminate(poller)


def test_a_beacon_for_a_vm_not_watched_changes_no_read(tier: OrchestratorTier) -> None:
    vault, poller = "vault-forged", "poller:t4"
    _watch(tier, vault, "w-watched", vm="vm-watched")
    tier.script.on("poll_jobs", vault, ok({"finished": ["w-watched"], "read": 1}))
    registered = tier.now()
    tier.begin("job_poller", poller, {**_spec(vault), "readsPerMinute": 60})
    tier.drive(poller, lambda s: custom(s, "watching") == 1)
    _beacon(tier, vault, poller, "vm-stranger")
    tier.drive(poller, lambda s: custom(s, "reads") == 1)
    polls = tier.script.requests("poll_jobs", vault)
    assert _polled_keys(tier, vault) == [["w-watched"]]
    assert moment(polls[0]["at"]) - registered == timedelta(seconds=270)  # on its plan, as without the beacon
    tier.terminate(poller)


def test_a_beacon_for_a_watch_already_taken_for_the_planned_wake_reads_it_once(tier: OrchestratorTier) -> None:
    vault, poller = "vault-twice", "poller:t5"
    _watch(tier, vault, "w-dense", vm="vm-dense", ran=400.0)  # in the dense window: read every 5 s
    tier.script.on("poll_jobs", vault, ok({"finished": ["w-dense"], "read": 1}))
    registered = tier.now()
    tier.begin("job_poller", poller, {**_spec(vault), "readsPerMinute": 60})
    tier.drive(poller, lambda s: custom(s, "watching") == 1)  # took it for the wake 5 s on, asleep
    _beacon(tier, vault, poller, "vm-dense")
    tier.drive(poller, lambda s: custom(s, "reads") == 1)
    polls = tier.script.requests("poll_jobs", vault)
    assert _polled_keys(tier, vault) == [["w-dense"]]
    assert moment(polls[0]["at"]) == registered
    tier.terminate(poller)


def test_snapshot_durations_the_reads_show_plan_the_vm_s_next_watch(tier: OrchestratorTier) -> None:
    vault, poller = "vault-learn", "poller:t6"
    _watch(tier, vault, "w-first", vm="vm-learn")
    _watch(tier, vault, "w-second", vm="vm-learn")
    tier.script.on(
        "poll_jobs",
        vault,
        ok({"finished": ["w-first"], "read": 1, "learned": {"w-first": 100.0}}),
        ok({"finished": ["w-second"], "read": 1, "learned": {"w-second": 120.0}}),
        ok({"finished": ["w-third"], "read": 1}),
    )
    tier.begin("job_poller", poller, _spec(vault))
    tier.drive(poller, lambda s: custom(s, "reads") == 2)
    tier.drive(poller, lambda s: custom(s, "watching") == 0)  # handed back, with their durations
    _watch(tier, vault, "w-third", vm="vm-learn")
    registered = tier.now()
    tier.drive(poller, lambda s: custom(s, "reads") == 3)
    third = tier.script.requests("poll_jobs", vault)[2]
    assert [w["key"] for w in third["watches"]] == ["w-third"]
    # The VM's own window (90-132 s, less the 30 s lead), not the chain's 5-15 minutes (270 s on).
    assert moment(third["at"]) - registered == timedelta(seconds=60)
    tier.terminate(poller)
