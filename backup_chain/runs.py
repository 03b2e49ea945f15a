"""What a chain run is started with: the orchestrator input built from the configuration (so
orchestrators never read configuration or environment themselves)."""

from __future__ import annotations

from typing import Any, Literal

from backup_chain.config import Chain, ChainConfig
from backup_chain.messages import ChainRunInput, GcSettings, UpstreamSignal


def chain_snapshot(chain: Chain) -> dict[str, Any]:
    data = chain.model_dump(mode="json")
    if chain.upstream is not None:
        data["upstream"]["timeoutSeconds"] = chain.upstream.timeout.total_seconds()
    # Deadlines as seconds (None when absent), for the orchestrators' durable timers.
    for field in ("startWindow", "snapshotDeadline"):
        value = getattr(chain, field)
        data[f"{field}Seconds"] = value.total_seconds() if value is not None else None
    return data


def run_input(
    config: ChainConfig,
    chain: Chain,
    run_id: str,
    *,
    source: str,
    started_by: Literal["window", "http", "event"],
    wait_for_upstream: bool,
    upstream: UpstreamSignal | None,
) -> ChainRunInput:
    return {
        "chain": chain_snapshot(chain),
        "runId": run_id,
        "prefix": config.eventTypePrefix,
        "source": source,
        "startedBy": started_by,
        "waitForUpstream": wait_for_upstream,
        "upstream": upstream,
        "gc": gc_settings(config, chain),
        "polling": {"shared": config.polling.shared},
    }


def gc_settings(config: ChainConfig, chain: Chain) -> GcSettings | None:
    """What a chain's VM backups need to know about GC enforcement: the mode, the policy, what to
    do about an overlap with the scheduled backup, and which of the chain's VMs GC covers
    (``vms``: lower-cased ids, ``None`` for all of them)."""
    if config.gc is None:
        return None
    covered = {vm.lower() for _, vm in config.gc_targets()}
    chain_vms = [vm.lower() for _, vm in chain.vm_ids()]
    # Without gc.vms GC covers every member, chosen or listed; with it, only the VMs it lists.
    every = config.gc.vms is None or (not chain.selects and all(vm in covered for vm in chain_vms))
    return {
        "mode": config.gc.mode,
        "policy": config.gc.policy,
        "overlap": config.gc.overlap,
        # A selecting chain may choose any VM gc.vms lists (even one another chain names).
        "vms": None if every else sorted(covered) if chain.selects else [vm for vm in chain_vms if vm in covered],
    }


def gc_for_vm(gc: GcSettings | None, vm_id: str) -> GcSettings | None:
    """The GC settings one VM's backup runs under: ``None`` for a VM GC does not cover, whose
    protection and schedule a chain then leaves alone."""
    covered = gc.get("vms") if gc is not None else None
    if gc is None or (covered is not None and vm_id.lower() not in covered):
        return None
    return {"mode": gc["mode"], "policy": gc["policy"], "overlap": gc["overlap"]}


def upstream_signal(status: str, detail: Any, event_id: str | None = None) -> UpstreamSignal:
    """What the run is told about the upstream job (the run stamps when it received it)."""
    return {"status": status, "detail": detail, "eventId": event_id}
