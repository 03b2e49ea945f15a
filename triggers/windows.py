"""``chain_windows``: keeps one ``chain_scheduler`` orchestration running per chain that has a
``window`` (started on first run, restarted when the chain's configuration changed)."""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from backup_chain.runs import run_input
from backup_chain.windows import config_fingerprint
from triggers.context import config, source
from triggers.runs import ACTIVE

bp = df.Blueprint()
log = logging.getLogger("backup_chain")


def scheduler_id(chain_name: str) -> str:
    return f"scheduler:{chain_name.lower()}"


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=True)
@bp.durable_client_input(client_name="client")
async def chain_windows(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    cfg = config()
    for chain in cfg.chains:
        if not chain.window:
            continue
        run = run_input(cfg, chain, "", source=source(), started_by="window", wait_for_upstream=True, upstream=None)
        run.pop("runId")
        fingerprint = config_fingerprint(run)
        instance_id = scheduler_id(chain.name)
        status = await client.get_status(instance_id)
        if status and status.runtime_status in ACTIVE:
            current = status.custom_status if isinstance(status.custom_status, dict) else {}
            if current.get("fingerprint") == fingerprint:
                continue
            await client.terminate(instance_id, "chain configuration changed")
            log.info("restarting window scheduler of chain %s: configuration changed", chain.name)
            continue  # started on the next firing, once the termination has been processed
        await client.start_new("chain_scheduler", instance_id, {"run": run, "fingerprint": fingerprint})
        log.info("window scheduler started for chain %s", chain.name)
