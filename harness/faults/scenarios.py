"""Seeded fault scenarios: ``generate(seed, scale)`` draws everything a fault run does from
``random.Random(seed)`` — how many VMs, their OS and vault, which fail their snapshot or their
transfer, which have a scheduled backup already running, the Recovery Services fault rates, when
devhost is SIGKILLed (and how long it stays down) and whether Event Grid delivers the upstream
event twice; then the wider world: bystander VMs outside the chain (and GC) set, in weekend-window
mode a GC subset and permanent AuthorizationFailed / ResourceNotFound on resuming or stopping
protection, an ARM outage on ``Backups_Trigger`` longer than the app's retries, and periods in
which the downstream topic refuses (401/403/404), is unreachable, or its emulator is SIGKILLed and
restarted (pending deliveries kept). The same seed and scale always give the same case."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from demo.stack import SUBSCRIPTION, vault_id, vm_id
from harness.chain_stack import WEEKLY, next_weekday_at

SCALES = ("small", "large")
SCALE_ENV = "FAULT_SCALE"
WEEKLY_POLICY = "weekly-policy"
WEEKEND_WINDOW = "weekend-window"
CHAIN = "faults"
UPSTREAM_TYPE = "Contoso.Etl.JobFinished"
UPSTREAM_SUBJECT = "/jobs/faults"
THURSDAY, FRIDAY, SATURDAY = 3, 4, 5
WINDOW_HOURS = 48
# (low, high) VM count, kills, vaults per scale; bounded so that a small case stays well under a
# minute of wall time on a 2-core machine.
_SIZES = {"small": ((8, 12), (2, 3), 2), "large": ((40, 60), (4, 6), 3)}
# Fault rates on every Recovery Services call, drawn per case. Every 429 costs a real second (the
# SDK honours Retry-After: 1 in wall time), so the small size keeps CI fast with moderate rates;
# the large size (bench) throttles a quarter to a third of all calls.
_RATES: dict[str, dict[str, Any]] = {
    "small": {
        "rate429": (0.05, 0.1),
        "rate5xx": (0.02, 0.05),
        "rate503": (0.01, 0.03),
        "dropRate": (0.02, 0.05),
        "latencyMs": (0, 10, 25),
    },
    "large": {
        "rate429": (0.25, 0.35),
        "rate5xx": (0.05, 0.1),
        "rate503": (0.05, 0.1),
        "dropRate": (0.05, 0.1),
        "latencyMs": (0, 25, 50),
    },
}
SNAPSHOT_MINUTES = (5.0, 9.0)
TRANSFER_MINUTES = (8.0, 16.0)
SNAPSHOT_ERRORS = {"Windows": "ExtensionFailedVssWriterInBadState", "Linux": "UserErrorFsFreezeFailed"}
KILL_MODES = ("inFlight", "afterAdvance", "atRest")
REFUSAL_CODES = ("AuthorizationFailed", "ResourceNotFound")
OUTAGE_CODE = "ServiceUnavailable"  # what an ARM outage (503 on every call) ends a backup with
# ... or, when the last of its retries fell just after the outage, the world's random fault then
OUTAGE_CODES = (OUTAGE_CODE, "CloudInternalError", "NetworkError", "SubscriptionRequestsThrottled")
DOWNSTREAM_REFUSALS = ("401", "403", "404")
DOWNSTREAM_OUTAGES = ("unreachable", "sigkill")
# (bystanders low/high, GC-subset exclusions low/high) per scale
_WORLD = {"small": ((2, 3), (1, 2)), "large": ((4, 8), (3, 6))}
# downstream fault lengths (virtual seconds): minutes, and hours (bounded tighter at small scale)
_MINUTES = (300.0, 900.0, 1800.0)
_HOURS = {"small": (3600.0, 7200.0), "large": (3600.0, 7200.0, 10800.0)}


def scale_from_env() -> str:
    scale = os.environ.get(SCALE_ENV, "small").strip().lower() or "small"
    if scale not in SCALES:
        raise ValueError(f"{SCALE_ENV}={scale!r}: expected one of {SCALES}")
    return scale


@dataclass(frozen=True)
class VmPlan:
    name: str
    os: str
    vault: str
    # ok | snapshot (fails Take Snapshot) | transfer (fails the transfer) | waitout (scheduled job
    # running) | refused (weekend-window: Azure refuses to resume its protection, permanently)
    fate: str

    @property
    def vm_id(self) -> str:
        return vm_id(self.name)

    @property
    def vault_id(self) -> str:
        return vault_id(self.vault)


@dataclass(frozen=True)
class Kill:
    """SIGKILL devhost at the first clock step after the run published ``after_events`` distinct
    events (so kills land in every phase, whatever the app's polling cadence): ``inFlight`` once
    devhost reports work in progress after the clock moved, ``afterAdvance`` right after the clock
    moved, ``atRest`` after the work settled. The clock then moves ``down_seconds`` (virtual)
    while devhost is down, and devhost is restarted on the same task hub."""

    after_events: int
    mode: str
    down_seconds: float


@dataclass(frozen=True)
class Bystander:
    """A VM of the scenario in no chain (nor GC set): a run must leave it alone."""

    name: str
    os: str
    vault: str
    protected: bool

    @property
    def vm_id(self) -> str:
        return vm_id(self.name)


@dataclass(frozen=True)
class DownstreamFault:
    """The downstream topic misbehaves from the first clock step after the run published
    ``after_events`` distinct events (a case's faults share that point and follow one another),
    for ``seconds`` of virtual time: ``kind`` ``401``/``403``/``404`` (refuses every publish),
    ``unreachable`` (drops them unanswered) or ``sigkill`` (the Event Grid emulator is SIGKILLed
    and restarted after, keeping what it accepted). Then it is restored; ``retry_route``: the
    driver also calls ``POST /api/deliveries/retry`` (else the app's own sweep and backoff
    redeliver)."""

    after_events: int
    kind: str
    seconds: float
    retry_route: bool = False

    @property
    def refusal(self) -> bool:
        return self.kind in DOWNSTREAM_REFUSALS


@dataclass(frozen=True)
class ArmOutage:
    """Every ``Backups_Trigger`` answers 503 from the first clock step after the run published
    ``after_events`` distinct events (0: from just before the upstream event is delivered), for
    ``seconds`` of virtual time — longer than the app's retries (AZURE_RETRY: 8 attempts 10 s
    apart), so VMs triggering then fail at ``trigger`` with ServiceUnavailable."""

    after_events: int
    seconds: float


@dataclass(frozen=True)
class FaultCase:
    seed: int
    scale: str
    gc_mode: str
    start: datetime
    vms: tuple[VmPlan, ...]
    faults: dict[str, Any]
    kills: tuple[Kill, ...]
    max_parallel: int
    stagger_seconds: float
    upstream_deliveries: int  # the same upstream event published this many times (at-least-once)
    window_kills: tuple[str, ...] = ()  # "open" / "close": SIGKILL in the clock step the GC window opens / closes
    upstream_while_down: bool = False  # SIGKILL before the upstream event is published; Event Grid redelivers
    step_seconds: float = 60.0
    limit_seconds: float = 8 * 3600.0  # virtual time the chain gets to publish ChainCompleted
    run_id: str = field(default="")
    bystanders: tuple[Bystander, ...] = ()
    gc_excluded: tuple[str, ...] = ()  # weekend-window: chain VMs outside gc.vms (their protection stays on)
    refusal_code: str = REFUSAL_CODES[0]  # the permanent error on ProtectedItems_CreateOrUpdate
    stop_refused: tuple[str, ...] = ()  # weekend-window: VMs whose stop is refused as the window closes
    arm_outage: ArmOutage | None = None
    downstream_faults: tuple[DownstreamFault, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.scale}-seed{self.seed}-{self.gc_mode}"

    @property
    def window_opens(self) -> datetime:
        """The weekly GC window's opening (Saturday 00:00 UTC) after the start."""
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        opens = midnight + timedelta(days=(SATURDAY - self.start.weekday()) % 7)
        return opens if opens > self.start else opens + timedelta(days=7)

    def vm(self, name: str) -> VmPlan:
        return next(v for v in self.vms if v.name == name)

    @property
    def resume_refused(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.vms if p.fate == "refused")

    def in_gc(self, name: str) -> bool:
        return self.gc_mode == WEEKEND_WINDOW and name not in self.gc_excluded

    def refusal_faults(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The Recovery Services fault body refusing protection changes of ``names`` (none: clear)."""
        spec = {"code": self.refusal_code, "vms": list(names)} if names else None
        return {"errors": {"ProtectedItems_CreateOrUpdate": spec}}

    def world(self) -> str:
        parts = [f"{len(self.bystanders)} bystanders"]
        if self.gc_mode == WEEKEND_WINDOW:
            parts.append(f"outside gc.vms {list(self.gc_excluded)}")
            parts.append(f"{self.refusal_code} on resume {list(self.resume_refused)} / stop {list(self.stop_refused)}")
        if self.arm_outage:
            at = self.arm_outage.after_events
            parts.append(
                f"ARM outage {f'after {at} events' if at else 'from the upstream signal'} "
                f"for {self.arm_outage.seconds:.0f}s"
            )
        for f in self.downstream_faults:
            route = " +retry route" if f.retry_route else ""
            parts.append(f"downstream {f.kind} after {f.after_events} events for {f.seconds:.0f}s{route}")
        return ", ".join(parts)

    def describe(self) -> str:
        fates: dict[str, int] = {}
        for plan in self.vms:
            fates[plan.fate] = fates.get(plan.fate, 0) + 1
        kills = ", ".join(f"after {k.after_events} events {k.mode} down {k.down_seconds:.0f}s" for k in self.kills)
        return (
            f"seed {self.seed} ({self.scale}, gc {self.gc_mode}): {len(self.vms)} VMs {fates}, "
            f"maxParallel {self.max_parallel}, stagger {self.stagger_seconds:.0f}s, faults {self.faults}, "
            f"kills [{kills}], upstream delivered x{self.upstream_deliveries}"
            + (f", kills as the GC window {'/'.join(self.window_kills)}" if self.window_kills else "")
            + (", devhost down while upstream is published" if self.upstream_while_down else "")
            + f"; {self.world()}"
        )

    # --- what the stack is started with ---------------------------------------------------------
    def scenario(self) -> dict[str, Any]:
        vaults: dict[str, list[dict[str, Any]]] = {}
        for plan in self.vms:
            vaults.setdefault(plan.vault, []).append(self._vm_body(plan))
        for other in self.bystanders:
            vaults.setdefault(other.vault, []).append(
                {
                    "name": other.name,
                    "resourceGroup": "rg-app",
                    "os": other.os,
                    "powerState": "running",
                    "policy": WEEKLY["name"],
                    "protected": other.protected,
                }
            )
        faults = dict(self.faults)
        if self.resume_refused:
            faults.update(self.refusal_faults(self.resume_refused))
        return {
            "subscriptionId": SUBSCRIPTION,
            "seed": self.seed,
            "vaults": [
                {"resourceGroup": "rg-backup", "name": name, "location": "japaneast", "policies": [WEEKLY], "vms": vms}
                for name, vms in sorted(vaults.items())
            ],
            "faults": faults,
        }

    def _vm_body(self, plan: VmPlan) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": plan.name,
            "resourceGroup": "rg-app",
            "os": plan.os,
            "powerState": "running",
            "policy": WEEKLY["name"],
            # weekend-window mode: protection is stopped (data retained) between backups — on the
            # VMs GC covers; a chain leaves the others' protection (on) alone
            "protected": not self.in_gc(plan.name),
            "snapshotMinutes": list(SNAPSHOT_MINUTES),
            "transferMinutes": list(TRANSFER_MINUTES),
        }
        if plan.fate == "snapshot":
            body["faults"] = {"snapshotFailureRate": 1.0, "snapshotErrorCode": SNAPSHOT_ERRORS[plan.os]}
        elif plan.fate == "transfer":
            body["faults"] = {"transferFailureRate": 1.0}
        elif plan.fate == "waitout":
            body["runningScheduledJob"] = {"startedMinutesAgo": 3}
        return body

    def chains(self) -> list[dict[str, Any]]:
        by_vault: dict[str, list[str]] = {}
        for plan in self.vms:
            by_vault.setdefault(plan.vault_id, []).append(plan.vm_id)
        return [
            {
                "name": CHAIN,
                "upstream": {"eventType": UPSTREAM_TYPE, "subject": UPSTREAM_SUBJECT, "timeout": "PT6H"},
                "targets": [{"vaultId": vault, "vms": vms} for vault, vms in sorted(by_vault.items())],
                "maxParallel": self.max_parallel,
                "staggerSeconds": self.stagger_seconds,
                "snapshotMinutes": list(SNAPSHOT_MINUTES),
                "monitorTransfer": True,
            }
        ]

    def config(self) -> dict[str, Any]:
        """Extra top-level configuration (the ``gc`` section in weekend-window mode)."""
        if self.gc_mode != WEEKEND_WINDOW:
            return {}
        return {
            "gc": {
                "mode": WEEKEND_WINDOW,
                "policy": WEEKLY["name"],
                "day": "Saturday",
                "at": "00:00",
                "windowHours": 48,
                **({"vms": [p.vm_id for p in self.vms if self.in_gc(p.name)]} if self.gc_excluded else {}),
            }
        }


def generate(seed: int, scale: str = "small", gc_mode: str | None = None) -> FaultCase:
    """The case for ``seed`` at ``scale``; ``gc_mode`` None lets the seed choose (one in four
    weekend-window)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    rng = random.Random(f"faults|{seed}|{scale}")
    (low, high), (kills_low, kills_high), vault_count = _SIZES[scale]
    mode = gc_mode or (WEEKEND_WINDOW if rng.random() < 0.25 else WEEKLY_POLICY)
    count = rng.randint(low, high)
    vaults = [f"rsv-{i + 1}" for i in range(vault_count)]
    fates = ["ok"] * count
    indexes = list(range(count))
    rng.shuffle(indexes)
    n_snap = max(1, round(count * rng.uniform(0.1, 0.2)))
    n_transfer = max(1, round(count * rng.uniform(0.05, 0.15)))
    for i in indexes[:n_snap]:
        fates[i] = "snapshot"
    for i in indexes[n_snap : n_snap + n_transfer]:
        fates[i] = "transfer"
    if mode == WEEKLY_POLICY and rng.random() < 0.5:  # a scheduled backup runs only while protected
        fates[indexes[n_snap + n_transfer]] = "waitout"
    vms = tuple(
        VmPlan(f"fvm{i + 1:03d}", rng.choice(("Linux", "Windows")), rng.choice(vaults), fates[i]) for i in range(count)
    )
    rates = _RATES[scale]
    faults: dict[str, Any] = {
        "rate429": round(rng.uniform(*rates["rate429"]), 3),
        "retryAfterSeconds": 1,
        "rate5xx": round(rng.uniform(*rates["rate5xx"]), 3),
        "rate503": round(rng.uniform(*rates["rate503"]), 3),
        "dropRate": round(rng.uniform(*rates["dropRate"]), 3),
        "latencyMs": rng.choice(rates["latencyMs"]),
        # Bursts on the trigger POST: more in a row than the SDK retries (3 status retries), so
        # the orchestrators' own durable retries run too.
        "operations": {"Backups_Trigger": {"fail429Next": rng.randint(2, 4), "fail5xxNext": rng.randint(0, 2)}},
    }
    # Kill points spread over the run's progress: from after the upstream signal (3 events:
    # started, upstream received, a first trigger) to the last few VMs' terminal events (the last
    # of which may come in the same clock step as ChainCompleted).
    expected_events = 3 + count + (count - n_snap) + count
    kill_points = sorted(rng.sample(range(3, expected_events - 3), rng.randint(kills_low, kills_high)))
    kills = tuple(Kill(p, rng.choice(KILL_MODES), float(rng.choice((0, 60, 120, 300)))) for p in kill_points)
    start = next_weekday_at(FRIDAY, 23, 40) if mode == WEEKEND_WINDOW else next_weekday_at(THURSDAY, 1, 0)
    # at most a few VMs queue behind the first wave (the ones failing their snapshot end early)
    max_parallel = max(2, count - rng.randint(0, n_snap)) if scale == "small" else rng.choice((10, 20))
    stagger = float(rng.choice((0, 5, 20)))
    deliveries = rng.choice((1, 2))
    # weekend-window mode: also kill devhost as the window opens (while it takes the leases and
    # resumes protection beside the running backups) and, on some seeds, as it closes
    window_kills: tuple[str, ...] = ()
    if mode == WEEKEND_WINDOW:
        window_kills = ("open", "close") if rng.random() < 0.5 else ("open",)
    # devhost down when the upstream event is published: Event Grid must retry its delivery
    upstream_while_down = rng.random() < 0.5
    # --- the wider world (drawn after everything above, so older seeds keep their shape) --------
    (by_low, by_high), (ex_low, ex_high) = _WORLD[scale]
    bystanders = tuple(
        Bystander(f"fby{i + 1:03d}", rng.choice(("Linux", "Windows")), rng.choice(vaults), rng.random() < 0.5)
        if mode == WEEKEND_WINDOW
        else Bystander(f"fby{i + 1:03d}", rng.choice(("Linux", "Windows")), rng.choice(vaults), True)
        for i in range(rng.randint(by_low, by_high))
    )
    gc_excluded: tuple[str, ...] = ()
    stop_refused: tuple[str, ...] = ()
    refusal_code = rng.choice(REFUSAL_CODES)
    if mode == WEEKEND_WINDOW:
        ok = [v.name for v in vms if v.fate == "ok"]
        rng.shuffle(ok)
        n_ex = rng.randint(ex_low, ex_high)
        gc_excluded = tuple(sorted(ok[:n_ex]))
        # one VM (large: two) whose resume Azure refuses, one (large: two) whose stop it refuses
        n_ref = 1 if scale == "small" else 2
        refused = set(ok[n_ex : n_ex + n_ref])
        stop_refused = tuple(sorted(ok[n_ex + n_ref : n_ex + 2 * n_ref]))
        vms = tuple(VmPlan(v.name, v.os, v.vault, "refused") if v.name in refused else v for v in vms)
    arm_outage = None
    if rng.random() < 0.5:
        # from the upstream signal (every VM exposed) or once a few VMs are in flight (some)
        at = 0 if rng.random() < 0.25 else rng.randint(3, max(4, count // 2))
        arm_outage = ArmOutage(at, float(rng.choice((300, 600, 900))))
        if at == 0:
            # most VMs then end at trigger: the run publishes ~count + 3 events, so the kill
            # points move into that range (in the same order)
            span = expected_events - 6
            kills = tuple(Kill(3 + (k.after_events - 3) * count // span, k.mode, k.down_seconds) for k in kills)
            expected_events = count + 6
    # downstream faults: a refusal period and/or an outage period, back to back from one point of
    # the run (the chain may finish within the first: its events wait in the outbox meanwhile)
    kinds = []
    if rng.random() < 0.75:
        kinds.append(rng.choice(DOWNSTREAM_REFUSALS))
    if rng.random() < 0.75:
        kinds.append(rng.choice(DOWNSTREAM_OUTAGES))
    rng.shuffle(kinds)
    begin = rng.randint(3, expected_events // 2)
    retry_route = rng.random() < 0.5
    downstream = [
        DownstreamFault(begin, kind, rng.choice(_MINUTES + _HOURS[scale]), retry_route and i == len(kinds) - 1)
        for i, kind in enumerate(kinds)
    ]
    added = sum(f.seconds for f in downstream) + (arm_outage.seconds if arm_outage else 0.0)
    return FaultCase(
        seed=seed,
        scale=scale,
        gc_mode=mode,
        start=start,
        vms=vms,
        faults=faults,
        kills=kills,
        max_parallel=max_parallel,
        stagger_seconds=stagger,
        upstream_deliveries=deliveries,
        window_kills=window_kills,
        upstream_while_down=upstream_while_down,
        limit_seconds=8 * 3600.0 + added,
        run_id=f"faults-{seed}",
        bystanders=bystanders,
        gc_excluded=gc_excluded,
        refusal_code=refusal_code,
        stop_refused=stop_refused,
        arm_outage=arm_outage,
        downstream_faults=tuple(downstream),
    )
