"""Risky settings of a valid configuration: nothing the app refuses, but what an operator would
want to know before deploying (docs/gc.md, docs/configuration.md). Each warning names its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backup_chain.config import ChainConfig
from backup_chain.daily_limit import FIRINGS_CAP, ON_DEMAND_PER_DAY, over_limit

LISTED_VMS = 3  # a warning about many VMs names this many and counts the rest


@dataclass(frozen=True)
class ConfigWarning:
    path: str
    message: str


def _some(vms: list[str]) -> str:
    shown = ", ".join(vms[:LISTED_VMS])
    return shown + (f" and {len(vms) - LISTED_VMS} more" if len(vms) > LISTED_VMS else "")


def _count(count: int, capped: bool) -> str:
    """A firing count; daily_limit stops counting a window at FIRINGS_CAP, so such a count is a floor."""
    return f"at least {count}" if capped else str(count)


def daily_limit(config: ChainConfig, start: datetime) -> list[ConfigWarning]:
    """VMs whose chains' windows could start more on-demand backups in 24 hours than Azure accepts
    (backup_chain.daily_limit), one warning per set of windows that add up, naming them."""
    grouped: dict[tuple[tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for over in over_limit(config.chains, start):
        grouped.setdefault((over.chains, over.firings), []).append(over.vm)
    warnings = []
    for (chains, firings), vms in grouped.items():
        detail = ", ".join(
            f"{config.chains[i].name}: {_count(count, count >= FIRINGS_CAP)}"
            for i, count in zip(chains, firings, strict=True)
        )
        total = _count(sum(firings), any(count >= FIRINGS_CAP for count in firings))
        warnings.append(
            ConfigWarning(
                ", ".join(f"chains[{i}].window" for i in chains),
                f"could start {total} on-demand backups of a VM in 24 hours ({detail} window firings) for "
                f"{_some(vms)}; Azure accepts {ON_DEMAND_PER_DAY} per VM per day and refuses the rest (BackupFailed "
                "CloudDosAbsoluteLimitReached)",
            )
        )
    return warnings


def gc_coverage(config: ChainConfig) -> list[ConfigWarning]:
    """GC enforcement off, or VMs it does not cover: their ad hoc-only backups starve Azure
    Backup's garbage collection (docs/gc.md)."""
    starve = "ad hoc-only backups starve Azure Backup's garbage collection (UserErrorRpCollectionLimitReached)"
    if config.gc is None:
        return [ConfigWarning("gc", f"no gc section: GC enforcement is off, nothing runs a weekly backup; {starve}")]
    warnings = []
    if not config.gc.enforce:
        warnings.append(ConfigWarning("gc.enforce", f"false: no weekly GC window opens; {starve}"))
    covered = {vm.lower() for _, vm in config.gc_targets()}
    for index, chain in enumerate(config.chains):
        if config.gc.vms is not None and chain.selects:
            warnings.append(
                ConfigWarning(
                    f"chains[{index}].targets",
                    f"VMs its 'select' chooses are not in gc.vms and get no weekly GC coverage; {starve}",
                )
            )
        outside = [vm for _, vm in chain.vm_ids() if vm.lower() not in covered]
        if outside:
            warnings.append(
                ConfigWarning(
                    f"chains[{index}].targets",
                    f"{len(outside)} VM(s) not in gc.vms get no weekly GC coverage ({_some(outside)}); {starve}",
                )
            )
    return warnings


def unscheduled_chains(config: ChainConfig) -> list[ConfigWarning]:
    """A chain with no window never runs by itself: its VMs are in no chain window."""
    return [
        ConfigWarning(
            f"chains[{index}].window",
            f"none: chain {chain.name!r} runs only when "
            + ("an upstream event arrives or " if chain.upstream else "")
            + "started through the API (runs start); the daily-limit check cannot count those runs",
        )
        for index, chain in enumerate(config.chains)
        if chain.window is None
    ]


def config_warnings(config: ChainConfig, start: datetime) -> list[ConfigWarning]:
    """Every warning of ``config``; window firings are counted from ``start``."""
    return daily_limit(config, start) + gc_coverage(config) + unscheduled_chains(config)
