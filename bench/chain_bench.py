"""The backup chain at scale on the embedded default: devhost running the app + the Recovery Services
and Event Grid emulators on one scaled clock. Three ways of watching the same scenario, side by side
in one run, with the same parallelism and the same snapshot and transfer times:

- **shared polling**: one chain run backs up ``--vms`` VMs across ``--vaults`` vaults, its job reads
  planned by the vault pollers within the subscription's read budget;
- **beacons**: a second chain (``beacons: true``) backs up ``--beacon-vms`` Linux VMs whose
  post-script sends a snapshot beacon (docs/beacon.md; the RS emulator sends it ``--beacon-gap``
  seconds before the job shows Take Snapshot Completed), polled only as the lost-beacon fallback;
- **60 s polling**: a fixed 60 s polling baseline (hand-written polling scripts,
  ``bench.script_poller``) backs up ``--baseline-vms`` other VMs.

Prints, for each: mean / p95 lag from Take Snapshot completing (the emulator's true
``snapshotCompletedAt``) to the SnapshotCompleted event being accepted by the downstream topic
(the Event Grid emulator's ``receivedAt``), and job reads per VM before and after the snapshot
(the RS emulator's per-job GetJobDetails counts) and for the snapshot signal (the reads before it
plus the one that saw it: what follows is watching the transfer, whose count for a fixed poller
depends only on the transfer's length); then ARM calls per VM, wall time, peak RSS and
CPU — figures, not assertions. The beacon path runs in real time (post-script → Event Grid →
the app), so on a clock scaled xN every real second of it counts N virtual seconds of lag: measure
beacons at a low ``--scale``.

    python -m bench.chain_bench [--vms 1000 --vaults 4 --scale 20]     # about 15 min on 2 cores
    python -m bench.chain_bench --vms 40 --vaults 2 --max-parallel 20     # quick check, ~5 min
    python -m bench.chain_bench --vms 200 --beacon-vms 200 --baseline-vms 200 --scale 2 \
        --stagger 2 --transfer-minutes 5 10                               # the three side by side

Lag is measured in virtual seconds, so every real second devhost spends queueing work counts
``--scale`` times over: on a small machine a high scale makes devhost's own backlog, not the polling
plan, decide the chain's lag (the progress lines show devhost's ready backlog). The baseline runs
on ``--baseline-vms`` VMs (default 250): a fixed-interval poller's lag does not depend on how many
VMs it watches, and 1,000 more 60 s pollers would mostly add CPU load that slows devhost down.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from backup_chain.polling import PollPlan
from bench.calendar import CLOCK_START, far_policy_day
from bench.script_poller import EVENT_TYPE as BASELINE_EVENT
from bench.script_poller import ScriptPoller, VmScript
from demo.args import signals_held, stop_cleanly_on_signals
from demo.stack import BEACON_TOPIC, DOWNSTREAM_TOPIC, SUBSCRIPTION, Stack, vault_id, vm_id

CHAIN = "bench"
BEACON_CHAIN = "bench-beacon"
RUN_ID = "bench"
PREFIX = "BackupChain."
VM_RG = "rg-app"
VAULT_RG = "rg-backup"


def _names(prefix: str, count: int, vaults: int) -> dict[int, list[str]]:
    """VM names per vault (1-based), spread round-robin."""
    out: dict[int, list[str]] = {v: [] for v in range(1, vaults + 1)}
    for i in range(count):
        v = i % vaults + 1
        out[v].append(f"{prefix}{v}-{i + 1:04d}")
    return out


Names = dict[int, list[str]]


def build(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Names, Names, Names]:
    ours = _names("c", args.vms, args.vaults)
    beaconed = _names("l", args.beacon_vms, args.vaults)
    base = _names("b", args.baseline_vms, args.vaults)
    # The weekly policy runs on a day the benchmark never reaches, so no scheduled backup interferes.
    policy_day = far_policy_day()
    policy = {
        "name": "weekly",
        "frequency": "Weekly",
        "days": [policy_day],
        "time": "02:00",
        "timeZone": "UTC",
        "retentionDays": 30,
    }

    def vm(name: str, index: int, beacon: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "resourceGroup": VM_RG,
            "os": "Windows" if index % 2 and not beacon else "Linux",
            "powerState": "running",
            "policy": "weekly",
            "protected": True,
            "snapshotMinutes": list(args.snapshot_minutes),
            "transferMinutes": list(args.transfer_minutes),
        }
        if beacon:  # the VMSnapshot post-script framework is Linux-only
            body["postScript"] = {"topic": BEACON_TOPIC, "gapSeconds": args.beacon_gap}
        return body

    scenario = {
        "subscriptionId": SUBSCRIPTION,
        "seed": args.seed,
        # ARM's per-subscription request limits (token buckets; reads 250 + 25/s) when asked for.
        "throttling": {"enabled": bool(args.arm_throttling)},
        "vaults": [
            {
                "resourceGroup": VAULT_RG,
                "name": f"bench-{v}",
                "location": "japaneast",
                "policies": [policy],
                "vms": [vm(n, i) for i, n in enumerate(ours[v] + base[v])]
                + [vm(n, i, beacon=True) for i, n in enumerate(beaconed[v])],
            }
            for v in range(1, args.vaults + 1)
        ],
    }

    # The operator configures each chain with the snapshot times they see for these VMs.
    def chain(name: str, names: Names, beacons: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "targets": [
                {"vaultId": vault_id(f"bench-{v}", VAULT_RG), "vms": [vm_id(n, VM_RG) for n in names[v]]}
                for v in range(1, args.vaults + 1)
                if names[v]
            ],
            "snapshotMinutes": list(args.chain_snapshot_minutes or args.snapshot_minutes),
            "maxParallel": args.max_parallel,
            "staggerSeconds": args.stagger,
            "monitorTransfer": True,
            "retainDays": 30,
        }
        if beacons:
            body["beacons"] = True
        return body

    chains = [chain(CHAIN, ours, False)] if args.vms else []
    if args.beacon_vms:
        chains.append(chain(BEACON_CHAIN, beaconed, True))
    polling = {"shared": args.polling == "shared", "readsPerMinute": args.reads_per_minute}
    return scenario, {"chains": chains, "polling": polling}, ours, beaconed, base


# --- figures -------------------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (devhost's app worker processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def peak_rss_mib(pid: int) -> float | None:
    """Peak RSS (VmHWM) of the process, plus its live descendants' peaks."""
    total = None
    for member in _tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmHWM:"):
                total = (total or 0.0) + int(line.split()[1]) / 1024
    return total


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds of the process and its live descendants."""
    total = None
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def ts(text: str | None) -> float | None:
    return isoparse(text).timestamp() if text else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def lag_line(label: str, lags: list[float]) -> str:
    if not lags:
        return f"  {label:<44} n/a"
    return (
        f"  {label:<44} mean {statistics.fmean(lags):7.1f} s   p95 {percentile(lags, 0.95):7.1f} s   "
        f"max {max(lags):7.1f} s   (n={len(lags)})"
    )


def collect_lags(
    events: list[dict[str, Any]], jobs: list[dict[str, Any]], event_type: str, names: set[str]
) -> tuple[list[float], list[float], int]:
    """(lag to topic receipt, lag to the event's own time, VMs whose snapshot completed but no
    event arrived) for the VMs in ``names``."""
    truth: dict[str, float] = {}
    for job in jobs:
        done = ts(job.get("snapshotCompletedAt"))
        if job.get("userTriggered") and job["vm"] in names and done is not None:
            truth[job["vm"]] = done  # one on-demand job per VM in this run
    received: dict[str, tuple[float, float]] = {}
    for record in events:
        event = record.get("event", record)
        if event.get("type") != event_type:
            continue
        name = str(event.get("subject", "")).rsplit("/", 1)[-1]
        if name in names and name not in received:
            received[name] = (ts(record["receivedAt"]) or 0.0, ts(event.get("time")) or 0.0)
    to_topic = [received[n][0] - truth[n] for n in truth if n in received]
    to_time = [received[n][1] - truth[n] for n in truth if n in received]
    return to_topic, to_time, sum(1 for n in truth if n not in received)


def subscription_figures(throttling: dict[str, Any]) -> dict[str, Any]:
    """The bench subscription's entry in the RS emulator's ``/admin/throttling``."""
    return dict((throttling.get("subscriptions") or {}).get(SUBSCRIPTION.lower()) or {})


def throttling_line(body: dict[str, Any]) -> str:
    """The RS emulator's per-subscription ARM figures (``/admin/throttling``): peak requests per
    virtual minute, 429s."""
    sub = subscription_figures(body)
    peak, throttled = sub.get("peakPerMinute") or {}, sub.get("throttled") or {}
    limits = body.get("reads") or {}
    return (
        f"  subscription reads: peak {peak.get('reads', 0)}/min (ARM: bucket {limits.get('bucket')}, refill "
        f"{limits.get('refillPerSecond')}/s = {60 * float(limits.get('refillPerSecond') or 0):.0f}/min; throttling "
        f"{'on' if body.get('enabled') else 'off'}), throttled (429) reads {throttled.get('reads', 0)}, "
        f"writes {throttled.get('writes', 0)}"
    )


# --- the run -------------------------------------------------------------------------------------
@dataclass
class Arm:
    """One way of watching, its VMs and the event that tells downstream their snapshot is taken."""

    label: str
    names: set[str]
    event_type: str
    lag: list[float] = field(default_factory=list)
    lag_time: list[float] = field(default_factory=list)
    missing: int = 0
    reads_to_snapshot: float = 0.0
    reads_after: float = 0.0
    reads_for_snapshot: float = 0.0  # the reads before it and the one that saw it: the snapshot signal's cost
    reads_before_beacon: float = 0.0  # of them, before the post-script's beacon (VMs with one)
    beacons: bool = False  # the arm's VMs send beacons

    def measure(self, events: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> None:
        self.lag, self.lag_time, self.missing = collect_lags(events, jobs, self.event_type, self.names)
        ours = [j for j in jobs if j.get("userTriggered") and j["vm"] in self.names]
        n = max(1, len(self.names))
        self.reads_to_snapshot = sum(int(j["reads"]["toSnapshot"]) for j in ours) / n
        self.reads_after = sum(int(j["reads"]["afterSnapshot"]) for j in ours) / n
        self.reads_before_beacon = sum(int(j["reads"].get("beforeBeacon", 0)) for j in ours) / n
        self.reads_for_snapshot = (
            sum(int(j["reads"]["toSnapshot"]) + min(1, int(j["reads"]["afterSnapshot"])) for j in ours) / n
        )

    @property
    def reads(self) -> float:
        return self.reads_to_snapshot + self.reads_after

    def line(self) -> str:
        lag = lag_line(f"{self.label} ({len(self.names)} VMs)", self.lag)
        return (
            f"{lag}\n  {'':<44} job reads/VM {self.reads:6.2f}: to the snapshot {self.reads_to_snapshot:5.2f}, "
            f"after it {self.reads_after:5.2f}; for the snapshot signal {self.reads_for_snapshot:5.2f}"
            + (f" (before the beacon {self.reads_before_beacon:5.2f})" if self.beacons else "")
        )


def names_of(names: Names) -> set[str]:
    return {n for per_vault in names.values() for n in per_vault}


def arms_line(events: list[dict[str, Any]], arms: list[Arm]) -> str:
    """Per arm: VMs whose snapshot was announced so far."""
    seen: Counter[str] = Counter()
    for event in events:
        name = str(event.get("subject", "")).rsplit("/", 1)[-1]
        for arm in arms:
            if event.get("type") == arm.event_type and name in arm.names:
                seen[arm.label] += 1
    return " | ".join(f"{arm.label}: snapshot {seen[arm.label]}/{len(arm.names)}" for arm in arms if arm.names)


@dataclass
class Round:
    """One run of both chains beside one run of the 60 s polling scripts."""

    number: int
    arms: list[Arm]
    chain_ops: Counter[str]
    baseline_ops: Counter[str]
    types: Counter[str]
    wall_chain: float
    wall_base: float
    virtual_span: float
    timed_out: bool
    script_errors: Counter[str]


def run_round(
    stack: Stack, args: argparse.Namespace, number: int, chains: list[dict[str, Any]], arms: list[Arm], baseline: Names
) -> Round:
    """Start both chains' runs and the polling scripts at once; wait until every chain run and
    script ended; measure each arm on this round's jobs and events only."""
    topic = stack.topic(DOWNSTREAM_TOPIC)
    scripts = [
        VmScript(f"bench-{v}", VAULT_RG, n, vm_id(n, VM_RG), VM_RG, i)
        for v, names in baseline.items()
        for i, n in enumerate(names)
    ]
    scripts.sort(key=lambda s: (s.index, s.vault))  # interleave vaults, as a chain walks its targets
    poller = ScriptPoller(
        clock=stack.clock,
        arm_url=stack.services["recoveryservices"].url,
        ca_bundle=str(stack.base / "ca-bundle.pem"),
        subscription=SUBSCRIPTION,
        topic_endpoint=topic["endpoint"],
        topic_key=topic["key"],
        scripts=scripts,
        interval_s=args.interval,
        max_parallel=args.max_parallel,
        stagger_s=args.stagger,
        workers=args.workers,
    )
    before: Counter[str] = Counter(stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"])
    completed_before = sum(1 for e in stack.downstream() if e.get("type") == PREFIX + "ChainCompleted")
    started_real, virtual_start = time.monotonic(), stack.clock.timestamp()
    if scripts:
        poller.start()
    for chain in chains:
        run_id = f"{RUN_ID}-{number}" if chain["name"] == CHAIN else f"{RUN_ID}-beacon-{number}"
        response = stack.api("POST", f"chains/{chain['name']}/runs", {"runId": run_id})
        if response.status_code != 202:
            raise SystemExit(f"starting {chain['name']} failed: {response.status_code} {response.text}")
    chain_done_at: float | None = None
    deadline, last_print, timed_out = started_real + args.timeout, 0.0, False
    while True:
        events = stack.downstream()
        completed = sum(1 for e in events if e.get("type") == PREFIX + "ChainCompleted") - completed_before
        if completed >= len(chains) and chain_done_at is None:
            chain_done_at = time.monotonic()
        if chain_done_at is not None and (not scripts or poller.done()):
            break
        if time.monotonic() > deadline:
            timed_out = True
            break
        if time.monotonic() - last_print > args.progress:
            last_print = time.monotonic()
            host = stack.admin("devhost", "GET", "/admin/host/status")
            fresh = [e for e in events if (ts(str(e.get("time") or "")) or 0.0) >= virtual_start]
            print(
                f"  [run {number}: {time.monotonic() - started_real:6.0f} s real, "
                f"{(stack.clock.timestamp() - virtual_start) / 60:6.1f} min virtual] {arms_line(fresh, arms)} | "
                f"chain runs ended {completed}/{len(chains)}, scripts ended {sum(1 for s in scripts if s.ended_at)} | "
                f"devhost ready {host['readyMessages']} activities {host['pendingActivities']} "
                f"busy {host['inProgress']}",
                flush=True,
            )
        time.sleep(2.0)
    wall_chain = (chain_done_at or time.monotonic()) - started_real
    poller.stop()
    wall_base = (poller.finished_at - (poller.started_at or 0.0)) / args.scale if poller.finished_at else float("nan")
    records = [
        r
        for r in stack.admin("eventgrid", "GET", "/admin/events", params={"topic": DOWNSTREAM_TOPIC})["events"]
        if (ts(r.get("receivedAt")) or 0.0) >= virtual_start
    ]
    jobs = [
        j
        for j in stack.admin("recoveryservices", "GET", "/admin/jobs", params={"limit": "1000000"})
        if (ts(j.get("startTime")) or 0.0) >= virtual_start
    ]
    after: Counter[str] = Counter(stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"])
    for arm in arms:
        arm.measure(records, jobs)
    return Round(
        number=number,
        arms=arms,
        chain_ops=after - before - poller.requests,
        baseline_ops=Counter(poller.requests),
        types=Counter(str(r["event"].get("type", "")) for r in records),
        wall_chain=wall_chain,
        wall_base=wall_base,
        virtual_span=stack.clock.timestamp() - virtual_start,
        timed_out=timed_out,
        script_errors=Counter(s.error for s in scripts if s.error),
    )


def print_round(args: argparse.Namespace, result: Round, chain_vms: int, base_vms: int) -> None:
    fixed, shared, beacons = result.arms
    print()
    print(
        f"Run {result.number}: {'TIMED OUT, figures are partial' if result.timed_out else 'complete'}; chain runs "
        f"{result.wall_chain:.0f} s, scripts {result.wall_base:.0f} s real (clock x{args.scale:g}; "
        f"{result.virtual_span / 3600:.2f} h virtual); events "
        f"{dict((k.rsplit('.', 1)[-1], v) for k, v in sorted(result.types.items()) if k.startswith(PREFIX + 'Backup'))}"
    )
    if result.script_errors:
        print(f"  baseline script errors: {dict(result.script_errors)}")
    print("  Lag, Take Snapshot completed (emulator truth) -> SnapshotCompleted accepted by the downstream topic;")
    print("  job reads: GetJobDetails answers per VM (RS emulator, per job, split at the snapshot's completion)")
    for arm in result.arms:
        if arm.names:
            print(arm.line())
    missing = {arm.label: arm.missing for arm in result.arms if arm.missing}
    if missing:
        print(f"  snapshot completed but no event: {missing}")
    calls_chains = sum(result.chain_ops.values()) / max(1, chain_vms)
    calls_base = sum(result.baseline_ops.values()) / max(1, base_vms)
    print(
        f"  ARM calls/VM: chains {calls_chains:.2f} {dict(sorted(result.chain_ops.items()))}; 60 s scripts "
        f"{calls_base:.2f} {dict(sorted(result.baseline_ops.items()))}"
    )
    print(target_line("shared polling: mean lag < 1/3 of fixed polling's", shared, fixed, 3, 0, result.timed_out))
    print(
        target_line(
            "beacons: mean lag <= 1/10 of fixed polling's, at <= 1/4 of its job reads per VM for the snapshot",
            beacons,
            fixed,
            10,
            4,
            result.timed_out,
        )
    )


def run(args: argparse.Namespace, base: Path) -> int:
    scenario, chains, ours, beaconed, baseline = build(args)

    def arms() -> list[Arm]:
        return [
            Arm(f"{args.interval:g} s polling", names_of(baseline), BASELINE_EVENT),
            Arm(f"{args.polling} polling", names_of(ours), PREFIX + "SnapshotCompleted"),
            Arm("beacons", names_of(beaconed), PREFIX + "SnapshotCompleted", beacons=True),
        ]

    plan = PollPlan.for_minutes(*(args.chain_snapshot_minutes or args.snapshot_minutes))
    print(
        f"chains: {args.vms} VMs ({args.polling} polling) and {args.beacon_vms} beaconed Linux VMs (beacon "
        f"{args.beacon_gap:g} s before the job shows the snapshot) in {args.vaults} vaults, maxParallel "
        f"{args.max_parallel}, stagger {args.stagger:g} s, snapshotMinutes "
        f"{list(args.chain_snapshot_minutes or args.snapshot_minutes)} (dense poll {plan.dense_s:g} s from "
        f"{plan.snapshot_low_s - plan.lead_s:g} s to {plan.snapshot_high_s + plan.lead_s:g} s); {args.runs} run(s)"
    )
    print(
        f"polling: {args.polling}"
        + (f", budget {args.reads_per_minute} job reads/min per subscription" if args.polling == "shared" else "")
        + f"; RS emulator ARM throttling {'on' if args.arm_throttling else 'off'}"
    )
    print(
        f"baseline: {args.baseline_vms} VMs, fixed {args.interval:g} s polling, same parallelism; scenario snapshot "
        f"{args.snapshot_minutes} min, transfer {args.transfer_minutes} min; clock x{args.scale:g}",
        flush=True,
    )
    t0 = time.monotonic()
    stack = Stack.start(base, scenario, chains, time_scale=args.scale, clock_start=CLOCK_START)
    rounds: list[Round] = []
    try:
        setup = time.monotonic() - t0
        for number in range(1, args.runs + 1):
            rounds.append(run_round(stack, args, number, chains["chains"], arms(), baseline))
            if rounds[-1].timed_out:
                break
        rs_stats = stack.admin("recoveryservices", "GET", "/admin/state")["stats"]
        errors = stack.admin("recoveryservices", "GET", "/admin/requests").get("errors") or {}
        arm_line = throttling_line(stack.admin("recoveryservices", "GET", "/admin/throttling"))
        rss = {name: peak_rss_mib(svc.process.pid) for name, svc in stack.services.items()}
        cpu = {name: cpu_seconds(svc.process.pid) for name, svc in stack.services.items()}
    finally:
        with signals_held():
            stack.stop()
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    self_cpu = resource.getrusage(resource.RUSAGE_SELF)
    for result in rounds:
        print_round(args, result, args.vms + args.beacon_vms, args.baseline_vms)
    print()
    print(f"Stack start {setup:.1f} s")
    if args.beacon_vms:
        print(
            f"Beacons: due {rs_stats.get('beaconsDue')}, sent {rs_stats.get('beaconsSent')}, "
            f"lost {rs_stats.get('beaconsLost')}"
        )
    if errors:
        print(f"RS emulator error responses: {errors}")
    print(arm_line)
    print(
        "Peak RSS (VmHWM): "
        + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items() if v is not None)
        + f", benchmark+baseline poller {self_rss:.0f} MiB"
    )
    print(
        "CPU seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if v is not None)
        + f", benchmark+baseline poller {self_cpu.ru_utime + self_cpu.ru_stime:.0f}"
    )
    return 0 if rounds and not rounds[-1].timed_out else 2


def target_line(what: str, arm: Arm, fixed: Arm, lag_factor: float, reads_factor: float, timed_out: bool) -> str:
    if not arm.lag or not fixed.lag:
        return f"  Target ({what}): cannot be judged (no lag figures)"
    mean, mean_fixed = statistics.fmean(arm.lag), statistics.fmean(fixed.lag)
    lag_ok = mean <= mean_fixed / lag_factor
    # Reads for the snapshot signal: what follows it (watching the transfer) is the same job for
    # every arm, and how long a fixed poller reads it depends only on the transfer's length.
    ours, theirs = arm.reads_for_snapshot, fixed.reads_for_snapshot
    reads_ok = not reads_factor or ours <= theirs / reads_factor
    verdict = "MET" if lag_ok and reads_ok and not timed_out and not arm.missing else "NOT MET"
    reads = (
        f"; job reads/VM for the snapshot {ours:.2f} vs {theirs:.2f} / {reads_factor:g} = {theirs / reads_factor:.2f} "
        f"({'ok' if reads_ok else 'missed'})"
        if reads_factor
        else f"; job reads/VM for the snapshot {ours:.2f} vs {theirs:.2f}"
    )
    return (
        f"  Target ({what}): {verdict} - mean lag {mean:.1f} s vs {mean_fixed:.1f} s / {lag_factor:g} = "
        f"{mean_fixed / lag_factor:.1f} s ({'ok' if lag_ok else 'missed'}){reads}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=1000, help="VMs the shared-polling chain backs up")
    parser.add_argument(
        "--beacon-vms", type=int, default=0, help="Linux VMs with the snapshot post-script the beacon chain backs up"
    )
    parser.add_argument(
        "--beacon-gap", type=float, default=5.0, help="seconds from the beacon to the job showing the snapshot"
    )
    parser.add_argument("--vaults", type=int, default=4)
    parser.add_argument(
        "--baseline-vms", type=int, default=None, help="VMs the 60 s poller backs up (default min(--vms, 250))"
    )
    parser.add_argument("--scale", type=float, default=20.0, help="virtual seconds per real second")
    parser.add_argument("--max-parallel", type=int, default=200, help="chain maxParallel (baseline the same)")
    parser.add_argument("--stagger", type=float, default=15.0, help="chain staggerSeconds (baseline the same)")
    parser.add_argument("--snapshot-minutes", type=float, nargs=2, default=(6.0, 9.0), metavar=("LOW", "HIGH"))
    parser.add_argument(
        "--chain-snapshot-minutes",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="what the chain is configured to expect (default: the scenario's --snapshot-minutes)",
    )
    parser.add_argument("--transfer-minutes", type=float, nargs=2, default=(20.0, 40.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--interval", type=float, default=60.0, help="baseline polling interval (virtual s)")
    parser.add_argument("--workers", type=int, default=16, help="baseline poller threads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the chains (and the scripts) this many times on one stack: what the app learns about each "
        "VM's snapshots (docs/beacon.md) changes its reads from the third run on",
    )
    parser.add_argument(
        "--polling", choices=("shared", "per-job"), default="shared", help="the app's polling.shared setting"
    )
    parser.add_argument(
        "--reads-per-minute", type=int, default=1000, help="the app's job-read budget per subscription (polling)"
    )
    parser.add_argument("--arm-throttling", action="store_true", help="the RS emulator enforces ARM's request limits")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many real seconds")
    parser.add_argument("--progress", type=float, default=20.0, help="real seconds between progress lines")
    parser.add_argument("--keep", default=None, help="keep the stack's files (logs, task hub) in this directory")
    args = parser.parse_args()
    stop_cleanly_on_signals()  # stopped by a signal, the stack's processes still stop
    if args.baseline_vms is None:
        args.baseline_vms = min(args.vms, 250)
    if args.keep:
        base = Path(args.keep)
        base.mkdir(parents=True, exist_ok=True)
        return run(args, base)
    with tempfile.TemporaryDirectory(prefix="chain-bench-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
