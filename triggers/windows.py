"""``chain_windows``: keeps one ``chain_scheduler`` orchestration running per chain that has a
``window`` (started on first run, restarted when the chain's configuration changed)."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from app_runtime import config, source
from backup_chain.ids import scheduler_instance_id
from backup_chain.runs import run_input
from backup_chain.windows import config_fingerprint
from triggers.singletons import keep_running

bp = df.Blueprint()


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=True)
@bp.durable_client_input(client_name="client")
async def chain_windows(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    cfg = config()
    for chain in cfg.chains:
        if not chain.window:
            continue
        run = run_input(cfg, chain, "", source=source(), started_by="window", wait_for_upstream=True, upstream=None)
        without_run_id = {k: v for k, v in run.items() if k != "runId"}  # the scheduler names each run
        await keep_running(
            client,
            scheduler_instance_id(chain.name),
            "chain_scheduler",
            {"run": without_run_id, "fingerprint": config_fingerprint(without_run_id)},
        )
