"""``watch_job``: read a backup job on the adaptive schedule until a condition holds.

Runs as its own sub-orchestration and continues as new every few polls, so that watching a
transfer for hours never grows a history without bound."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities.backup import get_job
from backup_chain.jobs import JobView
from backup_chain.messages import JobResult, WatchJobInput, WatchOutcome
from backup_chain.polling import PollPlan
from orchestrators.common import AZURE_RETRY, after, follow, iso, now, parse_time, publish, snapshot_completed

bp = df.Blueprint()
POLLS_PER_EXECUTION = 12


def _delay(plan: PollPlan, spec: WatchJobInput, current: Any) -> float:
    """Seconds until the next read, from how long the watched phase has lasted."""
    anchor = parse_time(spec.get("anchor"))
    return plan.delay(spec["until"], (current - anchor).total_seconds() if anchor else 0.0)


@bp.orchestration_trigger(context_name="context")
def watch_job(context: df.DurableOrchestrationContext):
    """Input: ``vaultId``, ``jobId``, ``until`` (``snapshot`` | ``transfer`` | ``end``), ``anchor``
    (when the watched phase began), ``plan`` (PollPlan fields), ``polls`` so far and ``behindKept``
    (the run keeps earlier events: queue SnapshotCompleted behind them).
    Output: ``{"ok": True, "job": JobView}`` or ``{"ok": False, "error": ...}``."""
    spec: WatchJobInput = context.get_input()
    follow(context, spec)
    plan = PollPlan.from_dict(spec["plan"])
    polls = int(spec.get("polls", 0))
    for _ in range(POLLS_PER_EXECUTION):
        yield context.create_timer(after(context, _delay(plan, spec, now(context))))
        result: JobResult = yield context.call_activity_with_retry(
            get_job, AZURE_RETRY, {"vaultId": spec["vaultId"], "jobId": spec["jobId"]}
        )
        polls += 1
        if not result["ok"]:
            failed: WatchOutcome = {**result, "polls": polls}
            return failed
        job = JobView.from_dict(result["job"])
        context.set_custom_status(
            {
                "phase": f"watching:{spec['until']}",
                "jobId": job.job_id,
                "jobStatus": job.status,
                "snapshot": job.snapshot_status,
                "polls": polls,
                "at": iso(now(context)),
            }
        )
        if job.reached(spec["until"]):
            announce = spec.get("announce")
            announced = bool(announce) and job.snapshot_done
            if announce and announced:
                yield publish(context, [snapshot_completed(context, announce, job)])
            reached: WatchOutcome = {"ok": True, "job": job.to_dict(), "polls": polls, "announced": announced}
            return reached
    context.continue_as_new({**spec, "polls": polls})
    return None
