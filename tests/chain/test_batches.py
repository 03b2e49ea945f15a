"""How a large run shares maxParallel among its vm_batch sub-orchestrations and staggers its first
wave (backup_chain.batches), and that new runs, scheduled ones included, carry the current plan."""

from __future__ import annotations

import pytest

from backup_chain.batches import BATCH_PLAN, BATCH_SIZE, BatchPlan, batch_plan, most_running, stagger_seconds
from backup_chain.config import parse_config
from backup_chain.runs import run_input, scheduler_run
from tests.chain.test_config import VALID

SIZES = [51, 60, 99, 100, 101, 149, 150, 151, 250, 333, 1000, 5000]


@pytest.mark.parametrize("vms", SIZES)
def test_the_current_plan_never_passes_max_parallel_and_never_runs_fewer_than_plan_1(vms: int) -> None:
    for max_parallel in range(1, 201):  # the configuration allows 1-200
        plan = batch_plan(vms, max_parallel, BATCH_PLAN)
        running = most_running(vms, plan)
        assert running <= max_parallel, (vms, max_parallel, plan)
        assert running >= most_running(vms, batch_plan(vms, max_parallel, None)), (vms, max_parallel, plan)
        assert 1 <= plan.per_batch <= BATCH_SIZE and 1 <= plan.at_once <= -(-vms // BATCH_SIZE)


@pytest.mark.parametrize(
    ("vms", "max_parallel", "at_once", "per_batch", "running", "plan_1_running"),
    [
        (101, 99, 3, 49, 99, 50),  # plan 1: one batch of 50 at a time
        (150, 120, 3, 40, 120, 100),
        (101, 120, 3, 50, 101, 100),
        (60, 120, 2, 50, 60, 60),  # a small run: every VM at once, as before
        (5000, 200, 4, 50, 200, 200),
        (100, 51, 1, 50, 50, 50),  # 51 cannot be split evenly over two batches: 50, as before
    ],
)
def test_the_current_plan_at_sizes_plan_1_fell_short(
    vms: int, max_parallel: int, at_once: int, per_batch: int, running: int, plan_1_running: int
) -> None:
    plan = batch_plan(vms, max_parallel, BATCH_PLAN)
    assert (plan.at_once, plan.per_batch, most_running(vms, plan)) == (at_once, per_batch, running)
    assert most_running(vms, batch_plan(vms, max_parallel, None)) == plan_1_running


@pytest.mark.parametrize(
    ("max_parallel", "at_once", "per_batch"), [(4, 1, 4), (50, 1, 50), (99, 1, 50), (120, 2, 50), (200, 4, 50)]
)
def test_a_run_started_without_a_plan_replays_plan_1(max_parallel: int, at_once: int, per_batch: int) -> None:
    assert batch_plan(500, max_parallel, None) == BatchPlan(at_once, per_batch)


def test_a_plan_this_version_does_not_know_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="batchPlan 3 is not known"):
        batch_plan(100, 10, 3)


@pytest.mark.parametrize(("vms", "max_parallel"), [(100, 51), (101, 99), (150, 120), (333, 7)])
def test_the_first_wave_is_exactly_the_vms_that_start_and_is_staggered_one_apart(vms: int, max_parallel: int) -> None:
    plan = batch_plan(vms, max_parallel, BATCH_PLAN)
    delays = [stagger_seconds(i, 20.0, max_parallel, plan) for i in range(vms)]
    first = [
        i for i in range(vms) if i // BATCH_SIZE < plan.at_once and i % BATCH_SIZE < plan.per_batch
    ]  # what fan_out starts at once
    assert sorted(delays[i] for i in first) == [20.0 * rank for rank in range(len(first))]
    assert all(delays[i] == 0 for i in range(vms) if i not in first)


def test_without_a_wave_the_stagger_is_plan_1_s_by_index() -> None:
    # Runs of at most 50 VMs start in index order; a plan-1 run replays the delays it began with.
    assert [stagger_seconds(i, 5.0, 3, None) for i in range(5)] == [0.0, 5.0, 10.0, 0, 0]


def test_every_new_run_is_started_with_the_current_plan_and_schedulers_keep_their_fingerprint() -> None:
    # run_input is the one builder of chain_run inputs (timer windows, HTTP, upstream events, retries).
    config = parse_config(VALID)
    started = run_input(
        config, config.chains[0], "r1", source="/test", started_by="http", wait_for_upstream=False, upstream=None
    )
    assert started["batchPlan"] == BATCH_PLAN == 2
    # The scheduler's fingerprint is over what it keeps: without the plan, as before plans existed,
    # so a deploy restarts no scheduler (orchestrators/scheduler.py stamps the plan on each run).
    assert set(scheduler_run(started)) == set(started) - {"runId", "batchPlan"}
