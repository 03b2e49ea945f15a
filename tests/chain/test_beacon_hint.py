"""Snapshot beacons in the pure core: ``parse_beacon`` names the bad field, ``hint_vaults`` finds
the boards that may watch a VM, and the board's ``hint`` makes a watched snapshot due at once and
dense for a bounded window, ahead of unhinted watches, while a stray, late or repeated beacon
changes nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from backup_chain.beacon import BEACON_EVENT_TYPE, MAX_BEACON_BYTES, BeaconInvalid, hint_vaults, parse_beacon
from backup_chain.config import parse_config
from backup_chain.job_watch import (
    HINT_FUTURE_SECONDS,
    HINT_READ_SECONDS,
    HINT_WINDOW_SECONDS,
    Board,
    poller_awaits_wake,
)
from tests.support.resource_ids import OTHER_SUB, vault, vm
from tests.support.watches import PLAN, board_watch

T0 = datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc)


def watch(key: str, vm_name: str | None, until: str = "snapshot", anchor: float = 0.0) -> dict[str, Any]:
    return board_watch(key, vm_name, until, anchor)


def valid(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": "b-1",
        "event_type": BEACON_EVENT_TYPE,
        "source": vm("web-1"),
        "time": T0,
        "size": 0,
    }
    return {**fields, **over}


def test_a_valid_beacon_gives_the_vm_and_its_time() -> None:
    beacon = parse_beacon(**valid(source=vm("web-1").replace("resourceGroups", "RESOURCEGROUPS")))
    assert beacon.vm_id == vm("web-1")
    assert beacon.at == T0.timestamp()
    assert parse_beacon(**valid(time="2027-01-04T03:00:00Z")).time == T0


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"event_id": ""}, "id"),
        ({"event_id": 7}, "id"),
        ({"event_type": "BackupChain.SnapshotCompleted"}, "type"),
        ({"source": None}, "source"),
        ({"source": vault("v1")}, "source"),  # a vault is no VM
        ({"source": vm("web-1") + "/extensions/x"}, "source"),
        ({"time": None}, "time"),
        ({"time": "yesterday"}, "time"),
        ({"time": "1970-01-01T00:00:00Z"}, "time"),
        ({"size": MAX_BEACON_BYTES + 1}, "data"),
        ({"size": None}, "data"),  # data that is no JSON text
    ],
)
def test_a_malformed_beacon_names_its_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(BeaconInvalid) as raised:
        parse_beacon(**valid(**over))
    assert raised.value.field == field
    assert f"beacon {field}:" in str(raised.value)


def test_hint_vaults_are_the_configured_vault_or_the_subscription_s_vaults() -> None:
    cfg = parse_config(
        {
            "chains": [
                {
                    "name": "c",
                    "targets": [
                        {"vaultId": vault("v1"), "vms": [vm("a1")]},
                        {"vaultId": vault("v2"), "vms": [vm("a2")]},
                        {"vaultId": vault("v9", OTHER_SUB), "vms": [vm("b1", OTHER_SUB)]},
                    ],
                }
            ]
        }
    )
    assert hint_vaults(cfg, vm("A2")) == [vault("v2")]  # names compare case-insensitively
    assert hint_vaults(cfg, vm("unlisted")) == [vault("v1"), vault("v2")]
    assert hint_vaults(cfg, vm("x", "22222222-2222-2222-2222-222222222222")) == []


def test_a_hint_makes_the_snapshot_watch_due_at_once_then_dense_for_a_window() -> None:
    board = Board()
    board.watch(watch("w1", "web-1"), now=0.0)
    board.watch(watch("w2", "web-2"), now=0.0)
    board.take(10.0, per_minute=600)  # the poller is alive; nothing due yet (first read at 330 s)
    planned = board.watches["w1"].due
    assert planned > 100.0
    keys, why = board.hint(vm("WEB-1"), at=100.0)
    assert (keys, why) == (["w1"], "")
    assert board.watches["w1"].due == 100.0 and board.watches["w2"].due == planned
    assert [w.key for w in board.take(101.0, per_minute=600)] == ["w1"]
    assert board.watches["w1"].due == 101.0 + HINT_READ_SECONDS
    # After the window the watch is back on its plan (a forged beacon costs a bounded number of reads).
    late = 100.0 + HINT_WINDOW_SECONDS + 1
    board.take(late, per_minute=600)
    assert board.watches["w1"].due == late + PLAN.snapshot_delay(late)
    assert board.watches["w1"].to_dict()["hintedUntil"] == 100.0 + HINT_WINDOW_SECONDS
    assert Board.from_state(board.to_state()).to_state() == board.to_state()  # survives the entity state


def test_hinted_watches_are_read_first_when_the_budget_is_short() -> None:
    board = Board()
    for i in range(4):  # in the dense window already: all due at 5 s, s0 first by registration
        board.watch(watch(f"s{i}", f"vm-{i}", anchor=-400.0), now=0.0)
    assert {w.due for w in board.watches.values()} == {5.0}
    board.take(1.0, per_minute=6)  # the poller is alive; nothing due yet
    assert board.hint(vm("vm-3"), at=20.0) == (["s3"], "")
    taken = board.take(30.0, per_minute=6)  # everything due, one token
    assert [w.key for w in taken] == ["s3"]


@pytest.mark.parametrize(
    ("setup", "vm_name", "at", "why"),
    [
        ("snapshot", "other", 100.0, "unwatched"),  # a VM in no run
        ("transfer", "web-1", 100.0, "unwatched"),  # its snapshot is already known
        ("snapshot", "web-1", -100.0, "implausible"),  # before the job began: an earlier backup's
        ("snapshot", "web-1", 10.0 + HINT_FUTURE_SECONDS + 1, "implausible"),  # far ahead of the board
    ],
)
def test_a_stray_or_implausible_beacon_changes_nothing(setup: str, vm_name: str, at: float, why: str) -> None:
    board = Board()
    board.watch(watch("w1", "web-1" if setup == "snapshot" else None, until=setup), now=0.0)
    board.take(10.0, per_minute=600)
    before = board.to_state()
    assert board.hint(vm(vm_name), at=at) == ([], why)
    assert board.to_state() == before


def test_a_redelivered_beacon_is_no_new_hint() -> None:
    board = Board()
    board.watch(watch("w1", "web-1"), now=0.0)
    board.take(10.0, per_minute=600)
    board.hint(vm("web-1"), at=100.0)
    board.take(100.0, per_minute=600)
    before = board.to_state()
    assert board.hint(vm("web-1"), at=100.0) == ([], "repeated")
    assert board.to_state() == before


def test_a_watch_is_hinted_once_so_beacons_spaced_past_the_window_cannot_keep_it_dense() -> None:
    board = Board()
    board.watch(watch("w1", "web-1"), now=0.0)
    board.take(10.0, per_minute=600)
    board.hint(vm("web-1"), at=100.0)
    board.take(100.0, per_minute=600)
    later = 100.0 + HINT_WINDOW_SECONDS + 1  # a new beacon id and time each, still plausible
    board.take(later, per_minute=600)
    before = board.to_state()
    assert board.hint(vm("web-1"), at=later) == ([], "repeated")
    assert board.to_state() == before
    assert board.watches["w1"].due == later + PLAN.snapshot_delay(later)  # on its plan


def test_a_beacon_dated_ahead_is_dense_only_in_its_own_window() -> None:
    board = Board()
    board.watch(watch("w1", "web-1", anchor=-400.0), now=0.0)  # in its dense window: due at 5 s
    board.take(1.0, per_minute=600)
    ahead = 1.0 + HINT_FUTURE_SECONDS  # still plausible, a forged or skewed time
    assert board.hint(vm("web-1"), at=ahead) == (["w1"], "")
    assert [w.key for w in board.take(5.0, per_minute=600)] == ["w1"]
    assert board.watches["w1"].due == 5.0 + PLAN.snapshot_delay(405.0)  # its plan, not 2 s
    assert board.hinted_due(5.0) == set()
    board.take(ahead, per_minute=600)
    assert board.watches["w1"].due == ahead + HINT_READ_SECONDS  # dense from the beacon's time


def test_a_take_ahead_flags_hinted_watches_already_due_to_be_read_now() -> None:
    board = Board()
    board.watch(watch("w1", "web-1"), now=0.0)
    board.watch(watch("w2", "web-2"), now=0.0)
    board.take(10.0, per_minute=600)
    board.hint(vm("web-1"), at=100.0)  # landed after the poller planned its next wake at 330
    taken = board.take(300.0, per_minute=600, now=101.0)  # the take ahead for the wake at 300
    assert {w.key for w in taken} == {"w1"}
    assert board.read_now == ["w1"]  # read at 101, not 300
    assert board.watches["w1"].due == 101.0 + HINT_READ_SECONDS  # rescheduled from now
    board.take(105.0, per_minute=600, now=100.0)  # taken again for 105, but not due yet at 100
    assert board.read_now == []
    assert "read_now" not in str(board.to_state())  # not state: a per-take answer


@pytest.mark.parametrize(
    ("runtime_status", "custom_status", "raise_wake"),
    [
        ("Running", {"phase": "polling", "woken": True, "wake": "2027-01-04T03:00:05Z"}, False),
        ("Running", {"phase": "polling", "woken": False, "wake": "2027-01-04T03:04:30Z"}, True),
        ("Running", {"phase": "starting"}, True),  # before its first round, or from older code
        ("Terminated", {"phase": "polling", "woken": True}, True),  # not running: the raise fails, logged
        ("Failed", {"phase": "polling", "woken": True}, True),
        (None, None, True),  # status not read: unknown, so raise
        ("Running", "woken", True),  # not a mapping: unknown, so raise
        ("Running", {"woken": "true"}, True),  # only a real True says the execution has no waiter left
    ],
)
def test_a_beacon_wakes_the_poller_unless_its_running_execution_was_woken(
    runtime_status: str | None, custom_status: object, raise_wake: bool
) -> None:
    assert poller_awaits_wake(runtime_status, custom_status) is raise_wake
