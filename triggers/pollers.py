"""``job_pollers``: keeps one ``job_poller`` running per configured vault when polling is shared:
started when the app starts (a deployment or settings change restarts it), again within 5 min
after a crash, and restarted when the polling settings changed. Run starts do not check: at scale
that was a status read per vault on every start, and a backup whose poller is silent reads its
job itself."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from app_runtime import config
from backup_chain.config import ChainConfig
from backup_chain.ids import poller_instance_id
from backup_chain.messages import PollerInput
from backup_chain.windows import config_fingerprint
from triggers.singletons import keep_running

bp = df.Blueprint()


def poller_input(cfg: ChainConfig, vault_id: str) -> PollerInput:
    per_minute, tick = cfg.vault_reads_per_minute(vault_id), cfg.polling.tickSeconds
    body = {"vaultId": vault_id, "readsPerMinute": per_minute, "tickSeconds": tick}
    fingerprint = config_fingerprint(body)
    return {"vaultId": vault_id, "readsPerMinute": per_minute, "tickSeconds": tick, "fingerprint": fingerprint}


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=True)
@bp.durable_client_input(client_name="client")
async def job_pollers(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    cfg = config()
    if cfg.polling.shared:
        for vault_id in cfg.vault_ids():
            await keep_running(client, poller_instance_id(vault_id), "job_poller", poller_input(cfg, vault_id))
