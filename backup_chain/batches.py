"""How a large run shares ``maxParallel`` among its ``vm_batch`` sub-orchestrations, and which of
its VMs are in the first, staggered wave (docs/design.md, "Parallelism").

Plan 1 ran ``maxParallel // 50`` batches of 50 at once, so a run over 50 VMs ran fewer VMs at once
than configured whenever ``maxParallel`` was not a multiple of 50 (99 ran 50), and nothing said
so; it also staggered VMs by their index in the run, not by when they start. Plan 2 picks the
batches at once and VMs per batch that let the most VMs run before their snapshot at once without
ever passing ``maxParallel`` (never fewer than plan 1), and staggers exactly the VMs that start
first. A run keeps the plan it was started with (``ChainRunInput.batchPlan``; absent: plan 1), so a
replaying run schedules exactly what it scheduled before."""

from __future__ import annotations

from dataclasses import dataclass

BATCH_SIZE = 50  # VMs per vm_batch sub-orchestration: bounds each history (runs over this are batched)
BATCH_PLAN = 2  # the plan new runs are started with


@dataclass(frozen=True)
class BatchPlan:
    at_once: int  # batches running at once
    per_batch: int  # VMs each batch runs at once

    def first_wave_rank(self, index: int) -> int | None:
        """The place of the run's ``index``-th VM among the VMs that start at once (None: it
        starts later, when a slot frees)."""
        batch, position = divmod(index, BATCH_SIZE)
        if batch < self.at_once and position < self.per_batch:
            return batch * self.per_batch + position
        return None


def most_running(vms: int, plan: BatchPlan) -> int:
    """The most VMs before their snapshot at once: the ``at_once`` largest batches (every batch
    has 50 VMs but the last), each capped at ``per_batch``."""
    full, last = divmod(vms, BATCH_SIZE)
    running = min(plan.at_once, full) * min(plan.per_batch, BATCH_SIZE)
    if plan.at_once > full and last:
        running += min(plan.per_batch, last)
    return running


def _largest_share(vms: int, at_once: int, max_parallel: int) -> int:
    """The most VMs per batch (0 if none) with ``at_once`` batches within ``max_parallel``."""
    full, last = divmod(vms, BATCH_SIZE)
    share = min(BATCH_SIZE, max_parallel // at_once)  # as if every running batch were full
    if at_once > full and last and full:  # the short last batch runs too: it takes at most ``last``
        share = max(share, min(BATCH_SIZE, (max_parallel - last) // full))
    while share and most_running(vms, BatchPlan(at_once, share)) > max_parallel:
        share -= 1
    return share


def batch_plan(vms: int, max_parallel: int, plan: int | None) -> BatchPlan:
    """How a run of ``vms`` (> BATCH_SIZE) VMs shares ``max_parallel`` (≥ 1) under its ``plan``
    (None: a run started before plans were recorded, plan 1)."""
    if plan is None:
        per_batch = min(BATCH_SIZE, max_parallel)
        return BatchPlan(max(1, max_parallel // per_batch), per_batch)
    if plan != BATCH_PLAN:
        raise ValueError(f"batchPlan {plan} is not known to this version (it knows 1 and {BATCH_PLAN})")
    batches = -(-vms // BATCH_SIZE)
    best = BatchPlan(1, min(BATCH_SIZE, max_parallel))
    for at_once in range(2, min(batches, max_parallel) + 1):
        candidate = BatchPlan(at_once, _largest_share(vms, at_once, max_parallel))
        # Ties keep fewer batches at once (larger shares): fewer histories growing side by side.
        if candidate.per_batch and most_running(vms, candidate) > most_running(vms, best):
            best = candidate
    return best


def stagger_seconds(index: int, stagger: float, max_parallel: int, wave: BatchPlan | None) -> float:
    """The delay before the run's ``index``-th VM starts: only the first wave is staggered, one
    ``stagger`` apart. ``wave``: a plan-2 batched run's plan; None (a run of at most BATCH_SIZE VMs,
    where VMs start in index order, or a plan-1 run replaying): by index, as plan 1 did."""
    if wave is None:
        return stagger * index if index < max_parallel else 0
    rank = wave.first_wave_rank(index)
    return stagger * rank if rank is not None else 0
