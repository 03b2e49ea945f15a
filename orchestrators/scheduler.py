"""``chain_scheduler``: one eternal orchestration per chain with a ``window``. It sleeps on a
durable timer until the window opens, runs the chain (which waits for its upstream signal), and
continues as new for the next window — so windows follow the orchestration clock, survive
restarts, and never overlap the previous run."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, cast

import azure.durable_functions as df

from backup_chain.chain_control import SKIPPED_REASON, ChainControl
from backup_chain.events import chain_cloud_event
from backup_chain.ids import chain_instance_id, run_id_for_window
from backup_chain.messages import ChainRunInput, SchedulerInput
from backup_chain.windows import next_window
from entities.chain_control import control_entity
from orchestrators.chain_run import chain_run
from orchestrators.common import iso, now, publish

bp = df.Blueprint()
log = logging.getLogger("backup_chain")


@bp.orchestration_trigger(context_name="context")
def chain_scheduler(context: df.DurableOrchestrationContext):
    """Input: ``run`` (a chain_run input without ``runId``) and ``fingerprint``."""
    spec: SchedulerInput = context.get_input()
    chain = spec["run"]["chain"]
    opens = next_window(chain["window"], now(context))
    run_id = run_id_for_window(opens)
    context.set_custom_status({"phase": "sleeping", "nextWindow": iso(opens), "fingerprint": spec["fingerprint"]})
    yield context.create_timer(opens)
    # A paused chain (entities/chain_control.py) skips the window and says so; the next one is
    # looked at again, so a resume takes effect at the next window.
    state: dict[str, Any] = yield context.call_entity(control_entity(chain["name"]), "get")
    pause = ChainControl.from_state(state["state"]).pause_view()
    if pause is not None:
        context.set_custom_status({"phase": "skippedPaused", "runId": run_id, "fingerprint": spec["fingerprint"]})
        if not context.is_replaying:
            log.warning("chain %s is paused: window %s skipped (run %s not started)", chain["name"], iso(opens), run_id)
        skipped = chain_cloud_event(
            prefix=spec["run"]["prefix"],
            chain=chain["name"],
            run_id=run_id,
            source=spec["run"]["source"],
            event_type="ChainSkipped",
            time=iso(now(context)),
            reason=SKIPPED_REASON,
            detail={**pause, "window": iso(opens)},
        )
        yield publish(context, [skipped])
        context.continue_as_new(spec)
        return None
    context.set_custom_status({"phase": "running", "runId": run_id, "fingerprint": spec["fingerprint"]})
    with contextlib.suppress(Exception):  # a failed run must not stop later windows; it reports itself
        run = cast(ChainRunInput, {**spec["run"], "runId": run_id})
        yield context.call_sub_orchestrator(chain_run, run, chain_instance_id(chain["name"], run_id))
    context.continue_as_new(spec)
    return None
