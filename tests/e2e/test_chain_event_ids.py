"""Two chains whose runs share a run id (one HTTP runId for both) publish events with distinct ids,
so subscribers dropping duplicates by id (as docs/events.md says) keep both chains' events."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.chain_stack import chain, kinds, records, run_to_end, scenario, start_stack, vm

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)
QUICK: dict[str, Any] = {"snapshot": (6.0, 8.0), "transfer": (8.0, 10.0)}


def test_runs_of_two_chains_sharing_a_run_id_publish_distinct_event_ids(tmp_path: Path) -> None:
    chains = [chain("twin-a", ["ta01"]), chain("twin-b", ["tb01"])]
    stack = start_stack(tmp_path, scenario([vm("ta01", **QUICK), vm("tb01", **QUICK)]), chains, start=MONDAY)
    try:
        for name in ("twin-a", "twin-b"):
            assert stack.api("POST", f"chains/{name}/runs", {"runId": "shared"}).status_code == 202
        stack.settle()
        stack.run_until(
            lambda: kinds(stack.downstream()).count("ChainCompleted") == 2, step=30, what="both runs to complete"
        )
        events = run_to_end(stack, "shared")
        assert {e["data"]["chain"] for e in events} == {"twin-a", "twin-b"}
        assert len(events) == 2 * (3 + 3)  # per chain: started, upstream, completed + 3 for its VM
        assert len({e["id"] for e in events}) == len(events)
        # What the topic accepted: one record per event, no id twice.
        ids = [r["event"]["id"] for r in records(stack) if r["event"]["data"]["runId"] == "shared"]
        assert sorted(ids) == sorted(e["id"] for e in events)
    finally:
        stack.stop()
