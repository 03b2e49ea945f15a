"""How a large run shares maxParallel among its vm_batch sub-orchestrations (backup_chain.batches)."""

from __future__ import annotations

import pytest

from backup_chain.batches import BATCH_PLAN, BATCH_SIZE, batch_plan
from backup_chain.config import parse_config
from backup_chain.runs import run_input
from tests.chain.test_config import VALID


@pytest.mark.parametrize("max_parallel", range(1, 201))  # the configuration allows 1-200
def test_the_current_plan_runs_all_but_at_most_one_vm_per_batch_and_never_more(max_parallel: int) -> None:
    plan = batch_plan(max_parallel, BATCH_PLAN)
    running = plan.at_once * plan.per_batch
    assert max_parallel - plan.at_once < running <= max_parallel
    assert 1 <= plan.per_batch <= BATCH_SIZE


@pytest.mark.parametrize(
    ("max_parallel", "at_once", "per_batch"),
    [(4, 1, 4), (50, 1, 50), (99, 1, 50), (120, 2, 50), (200, 4, 50)],
)
def test_a_run_started_without_a_plan_replays_plan_1(max_parallel: int, at_once: int, per_batch: int) -> None:
    # What runs in flight across the upgrade scheduled: 99 ran 50 at once, 120 ran 100.
    plan = batch_plan(max_parallel, None)
    assert (plan.at_once, plan.per_batch) == (at_once, per_batch)


@pytest.mark.parametrize(("max_parallel", "at_once", "per_batch"), [(99, 2, 49), (120, 3, 40), (200, 4, 50)])
def test_the_current_plan_at_the_sizes_plan_1_fell_short(max_parallel: int, at_once: int, per_batch: int) -> None:
    plan = batch_plan(max_parallel, BATCH_PLAN)
    assert (plan.at_once, plan.per_batch) == (at_once, per_batch)


def test_every_new_run_is_started_with_the_current_plan() -> None:
    # run_input is the one builder of chain_run inputs (timer windows, HTTP, upstream events, retries).
    config = parse_config(VALID)
    started = run_input(
        config, config.chains[0], "r1", source="/test", started_by="http", wait_for_upstream=False, upstream=None
    )
    assert started["batchPlan"] == BATCH_PLAN == 2
