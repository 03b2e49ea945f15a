"""What a chain run is started with: the orchestrator input built from the configuration (so
orchestrators never read configuration or environment themselves)."""

from __future__ import annotations

from typing import Any, Literal

from backup_chain.config import Chain, ChainConfig

UPSTREAM_STATUSES = ("Succeeded", "Failed")


def chain_snapshot(chain: Chain) -> dict[str, Any]:
    data = chain.model_dump(mode="json")
    if chain.upstream is not None:
        data["upstream"]["timeoutSeconds"] = chain.upstream.timeout.total_seconds()
    return data


def run_input(
    config: ChainConfig,
    chain: Chain,
    run_id: str,
    *,
    source: str,
    started_by: Literal["window", "http", "event"],
    wait_for_upstream: bool,
    upstream: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "chain": chain_snapshot(chain),
        "runId": run_id,
        "prefix": config.eventTypePrefix,
        "source": source,
        "startedBy": started_by,
        "waitForUpstream": wait_for_upstream,
        "upstream": upstream,
        "gc": gc_settings(config),
        "polling": {"shared": config.polling.shared},
    }


def gc_settings(config: ChainConfig) -> dict[str, Any] | None:
    """What a chain's VM backups need to know about GC enforcement."""
    if config.gc is None or config.gc.mode != "weekend-window":
        return None
    return {"mode": config.gc.mode, "policy": config.gc.policy}


def upstream_signal(status: str, detail: Any, event_id: str | None = None) -> dict[str, Any]:
    """What the run is told about the upstream job (the run stamps when it received it)."""
    return {"status": status, "detail": detail, "eventId": event_id}
