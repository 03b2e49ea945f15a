"""Reads where they matter: the job-watch board learns each VM's snapshot durations and whether a
beacon covered its last snapshot (``backup_chain.snapshot_history``), plans the VM's next
snapshot watch on them, and when reads are short reads first the snapshots most likely completed.
Bounded per vault, and a board saved before learning still loads."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from itertools import pairwise
from typing import Any

import pytest

from activities.job_poll import _snapshot_seconds
from backup_chain.job_watch import (
    HINT_READ_SECONDS,
    HINT_TRUSTED_AHEAD_SECONDS,
    HINT_WINDOW_SECONDS,
    STARVED_SECONDS,
    Board,
)
from backup_chain.jobs import JobView
from backup_chain.messages import Watch
from backup_chain.polling import PollPlan
from backup_chain.snapshot_history import MAX_BEACON_GAP_SECONDS, MAX_DURATIONS, MAX_VMS, SnapshotHistory
from entities.job_watch import _learned
from tests.support.resource_ids import vm
from tests.support.watches import PLAN, board_watch

BEACON_PLAN = PollPlan.for_chain(6, 8, beacons=True)  # the same window read every 60 s
LEAD = PLAN.lead_s


def watch(key: str, vm_name: str | None, anchor: float = 0.0, plan: PollPlan = PLAN, until: str = "snapshot") -> Any:
    return board_watch(key, vm_name, until, anchor, plan)


def learn(
    board: Board, vm_name: str, *durations: float, plan: PollPlan = PLAN, beacon_after: float | None = None
) -> None:
    """Snapshots of ``vm_name`` that took ``durations`` seconds, each finished by the poller;
    with ``beacon_after``, each one's beacon arrived that many seconds after its job started."""
    for n, seconds in enumerate(durations):
        key, anchor = f"{vm_name}-learn{n}", 10_000.0 * (n + 1)
        board.watch(watch(key, vm_name, anchor, plan), now=anchor)
        if beacon_after is not None:
            board.polled_at = anchor + beacon_after
            assert board.hint(vm(vm_name), anchor + beacon_after)[0] == [key]
        board.done([key], {key: seconds})


def reads(board: Board, key: str, until: float) -> list[float]:
    """The times ``key`` is read, with budget to spare, taking every due read up to ``until``."""
    times: list[float] = []
    while (due := board.watches[key].due) <= until:
        assert [w.key for w in board.take(due, per_minute=6000)] == [key]
        times.append(due)
    return times


def test_a_vm_s_durations_are_learned_from_finished_snapshot_watches_only() -> None:
    board = Board()
    learn(board, "web-1", 400.0, 420.4)
    known = board.history.of(vm("web-1").upper())  # ARM ids compare case-insensitively
    assert known is not None and known.durations == (400, 420) and not known.beaconed
    board.watch(watch("t", "web-2", until="transfer"), now=0.0)  # a transfer watch: no snapshot time
    board.watch(watch("anon", None), now=0.0)  # a snapshot watch that names no VM
    board.done(["t", "anon", "never-watched"], {"t": 300.0, "anon": 300.0, "never-watched": 300.0})
    assert board.history.of(vm("web-2")) is None and len(board.history) == 1
    board.watch(watch("x", "web-3"), now=0.0)
    board.done(["x"])  # a poller from before learning hands back no durations
    assert board.history.of(vm("web-3")) is None and "x" not in board.watches


def test_only_the_last_few_durations_are_kept() -> None:
    board = Board()
    learn(board, "web-1", *[300.0 + n for n in range(MAX_DURATIONS + 2)])
    known = board.history.of(vm("web-1"))
    assert known is not None and known.durations == tuple(300 + n for n in range(2, MAX_DURATIONS + 2))


def test_the_least_recently_learned_vm_is_dropped_beyond_the_cap_and_each_costs_few_bytes() -> None:
    history = SnapshotHistory()
    for n in range(MAX_VMS):
        history.record(vm(f"vm-{n}"), 400.0, beacon_gap=None)
    history.record(vm("vm-0"), 410.0, beacon_gap=5.0)  # learned again: now the most recent
    history.record(vm("vm-new"), 400.0, beacon_gap=None)  # one over the cap
    assert len(history) == MAX_VMS
    assert history.of(vm("vm-1")) is None  # the least recently learned went
    assert history.of(vm("vm-0")) is not None and history.of(vm("vm-new")) is not None
    for n in range(MAX_VMS):  # every VM with a full history, as a vault's board holds it
        for seconds in (395.0, 401.0, 412.0, 399.0, 1404.0):
            history.record(vm(f"vm-{n}"), seconds, beacon_gap=5.0)
    size = len(json.dumps(Board(history=history).to_state()["learned"]))
    assert size / MAX_VMS <= 56  # measured 51: ~255 KB for a full vault of 5,000 VMs


def test_a_vm_without_enough_history_keeps_the_chain_s_plan() -> None:
    board = Board()
    learn(board, "web-1", 200.0)  # one snapshot is no range yet
    board.watch(watch("w", "web-1"), now=0.0)
    board.watch(watch("fresh", "web-2"), now=0.0)
    assert board.watches["w"].plan == PLAN.to_dict() == board.watches["fresh"].plan
    assert board.watches["w"].due == PLAN.snapshot_low_s - LEAD


def test_a_learned_vm_is_read_from_its_own_window_and_never_less_than_the_chain_would() -> None:
    board = Board()
    learn(board, "fast", 200.0, 240.0, 220.0)  # far below the chain's 6-8 minutes
    board.watch(watch("w", "fast", anchor=0.0), now=0.0)
    times = reads(board, "w", until=PLAN.snapshot_high_s + LEAD)
    assert times[0] == 200.0 * 0.9 - LEAD  # nothing before the VM's own shortest snapshot
    # A run slower than the VM's usual is read densely to the chain's window end, as before learning.
    assert all(b - a == PLAN.dense_s for a, b in pairwise(times))
    assert times[-1] > PLAN.snapshot_high_s
    # A VM slower than the chain's window: no read before its own window (the saving).
    learn(board, "slow", 900.0, 960.0)
    board.watch(watch("s", "slow", anchor=0.0), now=0.0)
    assert board.watches["s"].due == 900.0 * 0.9 - LEAD > PLAN.snapshot_low_s - LEAD


def reads_of_a_fresh_vm(until: float) -> list[float]:
    board = Board()
    board.watch(watch("w", "new-vm"), now=0.0)
    return reads(board, "w", until)


def test_a_beaconed_vm_of_a_beacon_chain_is_not_read_in_its_window_and_a_lost_beacon_falls_back() -> None:
    board = Board()
    learn(board, "linux", 300.0, 320.0, plan=BEACON_PLAN, beacon_after=295.0)
    known = board.history.of(vm("linux"))
    assert known is not None and known.beaconed
    board.watch(watch("w", "linux", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    fallback = 320.0 * 1.1 + LEAD
    assert board.watches["w"].due == pytest.approx(fallback)  # no read in the learned window at all
    # This time the beacon is lost: the fallback read at the learned max + lead, then every 60 s.
    times = reads(board, "w", until=fallback + 120.0)
    assert times[0] == pytest.approx(fallback) and times[1] - times[0] == BEACON_PLAN.dense_s
    # The snapshot completed unbeaconed: the VM's next watch is read densely across its window.
    board.done(["w"], {"w": 330.0})
    board.watch(watch("w2", "linux", anchor=50_000.0, plan=BEACON_PLAN), now=50_000.0)
    assert board.watches["w2"].due == pytest.approx(50_000.0 + 300.0 * 0.9 - LEAD)
    assert board.watches["w2"].plan["dense_s"] == PLAN.dense_s


def test_a_vm_no_beacon_covered_in_a_beacon_chain_is_read_densely_from_its_next_snapshot() -> None:
    # A Windows VM in a beacon chain (the post-script framework is Linux-only): its first snapshot
    # is read at the 60 s fallback; once the board saw one complete with no beacon, the next one is
    # read every 5 s across the chain's window, as a chain without beacons would.
    board = Board()
    board.watch(watch("first", "win", plan=BEACON_PLAN), now=0.0)
    assert board.watches["first"].plan["dense_s"] == BEACON_PLAN.dense_s == 60.0
    board.done(["first"], {"first": 400.0})
    board.watch(watch("w", "win", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    times = reads(board, "w", until=PLAN.snapshot_high_s)
    assert times[0] == PLAN.snapshot_low_s - LEAD
    assert all(b - a == PLAN.dense_s for a, b in pairwise(times))
    # A Linux VM whose beacon covered its one snapshot so far stays on the 60 s fallback.
    learn(board, "linux", 400.0, plan=BEACON_PLAN, beacon_after=398.0)
    board.watch(watch("l", "linux", plan=BEACON_PLAN), now=0.0)
    assert board.watches["l"].plan["dense_s"] == 60.0


def test_a_beaconed_vm_is_read_its_learned_gap_after_the_beacon_not_at_the_fallback() -> None:
    board = Board()
    learn(board, "linux", 300.0, 320.0, plan=BEACON_PLAN, beacon_after=298.0)
    known = board.history.of(vm("linux"))
    assert known is not None and known.beacon_gap == 320.0 - 298.0  # its last beacon came 22 s early
    board.watch(watch("w", "linux", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    board.polled_at = 290.0
    assert board.hint(vm("linux"), 305.0) == (["w"], "")
    assert board.take(305.0, per_minute=6000) == []  # at the beacon the job would still show it running
    assert [w.key for w in board.take(327.0, per_minute=6000)] == ["w"]  # its gap later, not at the fallback
    assert board.watches["w"].due == 327.0 + HINT_READ_SECONDS  # then densely, as any hinted watch


def test_a_vm_with_no_learned_gap_is_read_at_the_beacon() -> None:
    board = Board()
    board.watch(watch("w", "fresh", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    board.polled_at = 290.0
    assert board.hint(vm("fresh"), 305.0) == (["w"], "")
    assert [w.key for w in board.take(305.0, per_minute=6000)] == ["w"]


def test_a_learned_gap_is_rounded_up_capped_and_what_the_beacon_did_round_trips() -> None:
    history = SnapshotHistory()
    # The post-script's time has whole seconds: a 5 s gap reads as 5.4 s from a truncated time, and
    # the first read must not come before the job shows the snapshot.
    history.record(vm("whole-seconds"), 400.0, beacon_gap=5.4)
    assert history.beacon_gap(vm("whole-seconds")) == 6.0
    history.record(vm("slow-agent"), 400.0, beacon_gap=55.0)  # within the hint window, but long
    assert history.beacon_gap(vm("slow-agent")) == MAX_BEACON_GAP_SECONDS
    history.record(vm("seen"), 400.0, beacon_gap=None, beacon_seen=True)
    history.record(vm("none"), 400.0, beacon_gap=None)
    saved = SnapshotHistory.from_state(json.loads(json.dumps(history.to_state())))
    for name, seen, covered in (("slow-agent", True, True), ("seen", True, False), ("none", False, False)):
        known = saved.of(vm(name))
        assert known is not None and (known.beacon_seen, known.beaconed) == (seen, covered), name
    assert saved.beacon_gap(vm("seen")) == 0.0


def test_one_slow_snapshot_cannot_keep_a_beaconed_vm_quiet_past_the_chain_s_window() -> None:
    board = Board()
    learn(board, "linux", 300.0, 3600.0, plan=BEACON_PLAN, beacon_after=3595.0)
    board.watch(watch("w", "linux", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    assert board.watches["w"].due == BEACON_PLAN.snapshot_high_s + LEAD  # not 3600 * 1.1 + 30


def test_a_beacon_dated_ahead_of_the_board_is_hinted_but_not_learned_from() -> None:
    # A forger sends at the job's start, dated to just before a guessed completion: the watch is
    # read densely for a minute, but the VM is not learned as beaconed.
    board = Board()
    board.watch(watch("w", "win", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    board.polled_at = 5.0
    assert board.hint(vm("win"), 5.0 + HINT_TRUSTED_AHEAD_SECONDS + 200.0)[0] == ["w"]
    board.done(["w"], {"w": 5.0 + HINT_TRUSTED_AHEAD_SECONDS + 230.0})
    known = board.history.of(vm("win"))
    assert known is not None and not known.beacon_seen and not known.beaconed


def test_once_its_hint_is_spent_a_quiet_watch_falls_back_to_polling() -> None:
    # A forged early beacon uses up the watch's one hint; the real one is then 'repeated'. After
    # the hint's minute the watch is read at the fallback spacing, not left quiet to its window end.
    board = Board()
    learn(board, "linux", 400.0, 420.0, plan=BEACON_PLAN, beacon_after=398.0)
    board.watch(watch("w", "linux", anchor=0.0, plan=BEACON_PLAN), now=0.0)
    quiet_end = board.watches["w"].due
    board.polled_at = 30.0
    assert board.hint(vm("linux"), 30.0)[0] == ["w"]
    times = reads(board, "w", until=30.0 + HINT_WINDOW_SECONDS + 130.0)
    after = [t for t in times if t >= 30.0 + HINT_WINDOW_SECONDS]
    assert after and after[0] < quiet_end and after[0] - 30.0 - HINT_WINDOW_SECONDS <= BEACON_PLAN.dense_s
    board.polled_at = 390.0
    assert board.hint(vm("linux"), 398.0) == ([], "repeated")  # the real beacon, too late to help


def test_an_adopted_job_inside_its_learned_window_is_not_kept_quiet() -> None:
    # vm_backup adopts a job already running: its beacon came before the watch existed (unwatched).
    board = Board()
    learn(board, "linux", 400.0, 420.0, plan=BEACON_PLAN, beacon_after=398.0)
    board.watch(watch("w", "linux", anchor=0.0, plan=BEACON_PLAN), now=400.0)
    assert board.watches["w"].due == 400.0 + BEACON_PLAN.dense_s


def test_stored_plans_keep_the_fields_older_code_reads_and_newer_fields_are_ignored() -> None:
    assert set(BEACON_PLAN.to_dict()) == set(PLAN.to_dict()) and "quiet_until_s" not in PLAN.to_dict()
    assert BEACON_PLAN.beacons and not PLAN.beacons
    assert PollPlan.from_dict({**PLAN.to_dict(), "added_later": 1.0}) == PLAN
    assert PollPlan.from_dict(PLAN.quiet_until(90.0).to_dict()).quiet_until_s == 90.0


def test_a_beacon_far_from_the_completion_does_not_make_the_vm_quiet() -> None:
    # A forged (or stray) beacon early in the job hints the watch, but the snapshot completed
    # after its window: the VM is not learned as beaconed, so its next watch is read as usual.
    board = Board()
    learn(board, "linux", 300.0, 320.0, plan=BEACON_PLAN, beacon_after=300.0 - HINT_WINDOW_SECONDS - 60.0)
    known = board.history.of(vm("linux"))
    assert known is not None and not known.beaconed
    board.watch(watch("w", "linux", plan=BEACON_PLAN), now=0.0)
    assert board.watches["w"].due == pytest.approx(300.0 * 0.9 - LEAD)


def test_a_beaconed_vm_of_a_chain_without_beacons_is_still_read_across_its_window() -> None:
    board = Board()
    learn(board, "linux", 300.0, 320.0, beacon_after=299.0)  # its beacons count only for beacon chains
    board.watch(watch("w", "linux"), now=0.0)
    assert board.watches["w"].due == pytest.approx(300.0 * 0.9 - LEAD)


def test_a_short_budget_reads_first_the_snapshots_most_likely_completed() -> None:
    board = Board()
    learn(board, "quick", 300.0, 310.0, 320.0)
    learn(board, "slow", 300.0, 600.0, 900.0)
    at = 100_000.0
    board.watch(watch("slow-w", "slow", anchor=at - 400.0), now=at - 400.0)  # 1 of 3 durations <= 400 s
    board.watch(watch("quick-w", "quick", anchor=at - 330.0), now=at - 330.0)  # all 3 <= 330 s
    board.watch(watch("fresh-w", "fresh", anchor=at - 420.0), now=at - 420.0)  # half the chain's 6-8 min
    for key in ("slow-w", "quick-w", "fresh-w"):
        board.watches[key].due = at - 1.0 if key != "slow-w" else at - 20.0  # the slow one is oldest due
    board.tokens, board.refilled_at = 1.0, at
    assert [w.key for w in board.take(at, per_minute=6)] == ["quick-w"]
    board.tokens = 2.0
    assert [w.key for w in board.take(at, per_minute=6)] == ["fresh-w", "slow-w"]


def test_a_short_budget_cannot_starve_an_unlikely_snapshot_watch() -> None:
    board = Board()
    learn(board, "quick", 300.0, 310.0, 320.0)
    at = 100_000.0
    board.watch(watch("quick-w", "quick", anchor=at - 330.0), now=at - 330.0)  # all its durations passed
    board.watch(watch("fresh-w", "fresh", anchor=at - 340.0), now=at - 340.0)  # barely into the chain's window
    board.watches["quick-w"].due = at - 1.0
    board.watches["fresh-w"].due = at - STARVED_SECONDS - 1.0  # kept waiting by the short budget
    board.tokens, board.refilled_at = 1.0, at
    assert [w.key for w in board.take(at, per_minute=6)] == ["fresh-w"]


def test_a_hinted_watch_still_goes_before_a_likely_completed_one() -> None:
    board = Board()
    learn(board, "quick", 300.0, 310.0)
    at = 100_000.0
    board.watch(watch("quick-w", "quick", anchor=at - 400.0), now=at - 400.0)
    board.watch(watch("hinted-w", "beaconing", anchor=at - 100.0), now=at - 100.0)
    board.polled_at = at
    board.hint(vm("beaconing"), at)
    board.watches["quick-w"].due = at
    board.tokens, board.refilled_at = 1.0, at
    assert [w.key for w in board.take(at, per_minute=6)] == ["hinted-w"]


def test_a_board_saved_before_learning_loads_and_keeps_its_watches_plans() -> None:
    old_plan = {k: v for k, v in PLAN.__dict__.items() if k not in ("beacons", "quiet_until_s")}
    old_watch = {**watch("w", "web-1"), "plan": old_plan, "due": 330.0}
    board = Board.from_state({"watches": {"w": old_watch}, "tokens": 3.0, "refilledAt": 10.0, "polledAt": 10.0})
    assert len(board.history) == 0
    assert [w.key for w in board.take(330.0, per_minute=600)] == ["w"]
    assert board.watches["w"].due == 335.0  # its old plan, dense in the window
    board.done(["w"], {"w": 400.0})
    restored = Board.from_state(json.loads(json.dumps(board.to_state())))
    known = restored.history.of(vm("web-1"))
    assert known is not None and known.durations == (400,)


def test_take_refuses_learned_durations_that_are_not_seconds() -> None:
    assert _learned(None) == {}
    assert _learned({"w": 300}) == {"w": 300.0}
    for bad in ([300], {"w": "300"}, {"w": -1.0}, {"w": True}, {"w": float("nan")}):
        with pytest.raises(ValueError, match="learned"):
            _learned(bad)


def _job(snapshot_status: str, snapshot_end: str | None) -> JobView:
    return JobView(job_id="j", status="InProgress", snapshot_status=snapshot_status, snapshot_end=snapshot_end)


def test_the_poller_learns_the_task_s_end_time_else_the_read_that_saw_it() -> None:
    start = datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc).timestamp()
    snap: Watch = watch("w", "web-1", anchor=start)
    read_at = "2027-01-04T03:09:00Z"
    assert _snapshot_seconds(snap, read_at, _job("Completed", "2027-01-04T03:07:30.5Z")) == 450.5
    assert _snapshot_seconds(snap, read_at, _job("Completed", None)) == 540.0
    assert _snapshot_seconds(snap, read_at, _job("InProgress", None)) is None
    assert _snapshot_seconds(snap, read_at, _job("Failed", "2027-01-04T03:07:30Z")) is None
    assert _snapshot_seconds({**snap, "until": "transfer"}, read_at, _job("Completed", None)) is None
    assert _snapshot_seconds({**snap, "anchor": start + 1000}, read_at, _job("Completed", None)) is None
