"""The shared job-watch board (``backup_chain.job_watch``): the budget is never exceeded, urgent
watches go first, every due watch is read eventually, registration is idempotent, and a waiter
reads its job itself only when the poller is silent."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from backup_chain.config import parse_config
from backup_chain.job_watch import BURST_SECONDS, Board
from tests.support.resource_ids import OTHER_SUB, vault, vm
from tests.support.watches import PLAN, board_watch


def watch(key: str, until: str = "snapshot", anchor: float = 0.0) -> dict[str, Any]:
    return board_watch(key, None, until, anchor)


def test_first_read_follows_the_plan_and_registration_is_idempotent() -> None:
    board = Board()
    board.watch(watch("a"), now=0.0)
    due = board.watches["a"].due
    assert due == PLAN.snapshot_delay(0.0)  # nothing before the shortest snapshot time
    board.take(due, per_minute=600)
    rescheduled = board.watches["a"].due
    board.watch(watch("a"), now=due)  # a waiter's fallback registers again
    assert board.watches["a"].due == rescheduled  # ...without resetting its schedule
    assert [w.key for w in board.take(due, 600)] == []  # not due again before its next read


def test_snapshot_watches_are_read_before_transfers_when_the_budget_is_short() -> None:
    board = Board()
    for i in range(5):
        board.watch(watch(f"t{i}", "transfer"), now=0.0)
    for i in range(5):
        board.watch(watch(f"s{i}", "snapshot"), now=0.0)
    at = 4000.0  # everything is due
    taken = board.take(at, per_minute=6 * 60 / BURST_SECONDS)  # a full bucket of 6 tokens
    assert len(taken) == 6
    assert [w.until for w in taken] == ["snapshot"] * 5 + ["transfer"]
    # The rest waits for budget: the next wake is when one token is back, not "now".
    assert board.next_wake(at, per_minute=36) == at + 60 / 36


def test_done_removes_and_an_empty_board_sleeps() -> None:
    board = Board()
    board.watch(watch("a"), now=0.0)
    board.done(["a", "unknown"])
    assert board.watches == {}
    assert board.next_wake(10.0, 600) is None


def test_a_silent_waiter_reads_itself_only_when_the_poller_is_silent_too() -> None:
    board = Board()
    board.watch(watch("a"), now=0.0)
    board.watch(watch("b"), now=0.0)
    assert board.fallback("a", now=900.0, silent_seconds=900.0) == "withdrawn"  # no round ever
    assert "a" not in board.watches  # so the poller can never read and announce it as well
    board.take(600.0, 600)  # a round at 600 s: the poller is alive, only behind
    assert board.fallback("b", now=1400.0, silent_seconds=900.0) == "watching"
    assert "b" in board.watches
    board.done(["b"])  # the poller finished it: its notice went out before this
    assert board.fallback("b", now=1450.0, silent_seconds=900.0) == "finished"
    board.watch(watch("c"), now=1450.0)
    assert board.fallback("c", now=1500.0 + 900.0, silent_seconds=900.0) == "withdrawn"  # silent again


def test_state_round_trips_through_json_names() -> None:
    board = Board()
    board.watch(watch("a", "end", anchor=5.0), now=7.0)
    board.take(500.0, 120)
    state = board.to_state()
    assert state["watches"]["a"]["vaultId"] == "/v" and state["watches"]["a"]["jobId"] == "job-a"
    assert state["polledAt"] == 500.0
    assert Board.from_state(state).to_state() == state


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.floats(min_value=6, max_value=3000),
    watches=st.lists(
        st.tuples(st.sampled_from(["snapshot", "transfer", "end"]), st.floats(min_value=0, max_value=600)),
        min_size=1,
        max_size=60,
    ),
    steps=st.lists(st.floats(min_value=0.5, max_value=30), min_size=5, max_size=80),
)
def test_reads_never_exceed_the_budget_and_every_due_watch_is_read(
    per_minute: float, watches: list[tuple[str, float]], steps: list[float]
) -> None:
    board = Board()
    for i, (until, anchor) in enumerate(watches):
        board.watch(watch(str(i), until, anchor), now=anchor)
    now, reads = 600.0, 0
    start = now
    for step in steps:
        reads += len(board.take(now, per_minute))
        now += step
    # Token bucket: at most a full bucket plus what refilled since the first take.
    allowed = max(1.0, per_minute / 60 * BURST_SECONDS) + (now - step - start) * per_minute / 60
    assert reads <= allowed + 1e-6
    # Liveness: keep taking at the board's own wake times; every watch gets read.
    seen: set[str] = set()
    for _ in range(20_000):
        wake = board.next_wake(now, per_minute)
        assert wake is not None and wake >= now
        now = wake
        seen.update(w.key for w in board.take(now, per_minute))
        if len(seen) == len(watches):
            break
    assert len(seen) == len(watches)


def test_the_read_budget_is_split_across_a_subscriptions_vaults() -> None:
    cfg = parse_config(
        {
            "polling": {"readsPerMinute": 900},
            "chains": [
                {
                    "name": "c",
                    "targets": [
                        {"vaultId": vault("v1"), "vms": [vm("a1")]},
                        {"vaultId": vault("v2"), "vms": [vm("a2")]},
                        {"vaultId": vault("v3"), "vms": [vm("a3")]},
                        {"vaultId": vault("v1", OTHER_SUB), "vms": [vm("b1", OTHER_SUB)]},
                    ],
                }
            ],
        }
    )
    assert cfg.vault_reads_per_minute(vault("v2")) == 300
    assert cfg.vault_reads_per_minute(vault("v1", OTHER_SUB)) == 900
    assert len(cfg.vault_ids()) == 4
