"""How a large run shares ``maxParallel`` among its ``vm_batch`` sub-orchestrations (docs/design.md,
"Parallelism"): how many batches run at once, and how many VMs each runs at once.

Plan 1 ran ``maxParallel // 50`` batches of 50 at once, so a run over 50 VMs ran fewer VMs at once
than configured whenever ``maxParallel`` was not a multiple of 50 (99 ran 50, 120 ran 100), and
nothing said so. Plan 2 runs as many batches as ``maxParallel`` needs and splits it evenly among
them: never more than ``maxParallel``, at most one VM per batch less. A run keeps the plan it was
started with (``ChainRunInput.batchPlan``; absent: plan 1), so a replaying run schedules exactly
what it scheduled before."""

from __future__ import annotations

from dataclasses import dataclass

BATCH_SIZE = 50  # VMs per vm_batch sub-orchestration: bounds each history (runs over this are batched)
BATCH_PLAN = 2  # the plan new runs are started with


@dataclass(frozen=True)
class BatchPlan:
    at_once: int  # batches running at once
    per_batch: int  # VMs each batch runs at once


def batch_plan(max_parallel: int, plan: int | None) -> BatchPlan:
    """The share of ``max_parallel`` (≥ 1) under the run's ``plan`` (None: a run started before
    plans were recorded, plan 1)."""
    if plan is None or plan < 2:
        per_batch = min(BATCH_SIZE, max_parallel)
        return BatchPlan(max(1, max_parallel // per_batch), per_batch)
    at_once = -(-max_parallel // BATCH_SIZE)  # ceil
    return BatchPlan(at_once, max_parallel // at_once)
