"""The pure parts of pausing and retrying: the ``chain_control`` state's operations (a second
pause keeps the first, a resume of a running chain changes nothing, an unknown operation is
refused) and the retry run ids (``-r1``, then ``-r2`` …, none past the run id's length)."""

from __future__ import annotations

import pytest

from backup_chain.chain_control import ChainControl, control_apply, paused_refusal
from backup_chain.ids import retry_run_id

AT = "2027-01-04T09:15:00.000000Z"


def test_a_second_pause_keeps_the_first_and_resume_clears_it() -> None:
    control = ChainControl()
    first = control_apply(control, "pause", {"at": AT, "reason": "maintenance", "by": "ops"})
    assert first["changed"] is True and first["before"]["paused"] is False
    again = control_apply(control, "pause", {"at": "2027-01-05T00:00:00.000000Z", "reason": "other", "by": None})
    assert again["changed"] is False
    assert again["state"] == {"paused": True, "since": AT, "reason": "maintenance", "by": "ops"}
    assert paused_refusal("nightly", control) == (
        f"chain 'nightly' is paused since {AT} (maintenance); resume it first (POST /api/chains/nightly/resume)"
    )
    resumed = control_apply(control, "resume", {"at": AT, "by": None})
    assert resumed["changed"] is True and resumed["before"]["since"] == AT
    assert resumed["state"] == {"paused": False, "since": None, "reason": None, "by": None}
    assert control_apply(control, "resume", {})["changed"] is False
    assert paused_refusal("nightly", control) is None and control.pause_view() is None


def test_state_round_trips_and_an_unknown_operation_is_refused() -> None:
    control = ChainControl.from_state({"paused": True, "since": AT, "reason": None, "by": None})
    assert control.pause_view() == {"since": AT, "reason": None, "by": None}
    assert ChainControl.from_state(None) == ChainControl()
    with pytest.raises(ValueError, match="chain_control has no operation 'stop'"):
        control_apply(control, "stop", {})
    assert control.paused is True


@pytest.mark.parametrize(
    ("run_id", "retry"),
    [
        ("r1", "r1-r1"),
        ("r1-r1", "r1-r2"),
        ("w-20270104T090000Z-r9", "w-20270104T090000Z-r10"),
        ("a-r0", "a-r0-r1"),  # -r0 is no retry suffix
        ("x" * 77, "x" * 77 + "-r1"),
        ("x" * 78, None),  # 81 characters: longer than a run id may be
    ],
)
def test_retry_run_ids(run_id: str, retry: str | None) -> None:
    assert retry_run_id(run_id) == retry
