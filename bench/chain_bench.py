"""The backup chain at scale on the embedded default: devhost running the app + the Recovery Services
and Event Grid emulators on one scaled clock. One chain run backs up ``--vms`` VMs across
``--vaults`` vaults; in the same run and scenario, a fixed 60 s polling baseline (hand-written
polling scripts, ``bench.script_poller``) backs up ``--baseline-vms`` other VMs with the same parallelism.

Prints, for both: mean / p95 lag from Take Snapshot completing (the emulator's true
``snapshotCompletedAt``) to the SnapshotCompleted event being accepted by the downstream topic
(the Event Grid emulator's ``receivedAt``), job-detail GETs and ARM calls per VM (the RS
emulator's request counts), wall time and peak RSS — figures, not assertions.

    python -m bench.chain_bench [--vms 1000 --vaults 4 --scale 20]     # about 15 min on 2 cores
    python -m bench.chain_bench --vms 40 --vaults 2 --max-parallel 20     # quick check, ~5 min

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
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from backup_chain.polling import PollPlan
from bench.calendar import CLOCK_START, far_policy_day
from bench.script_poller import EVENT_TYPE as BASELINE_EVENT
from bench.script_poller import ScriptPoller, VmScript
from demo.stack import DOWNSTREAM_TOPIC, SUBSCRIPTION, Stack, vault_id, vm_id

CHAIN = "bench"
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


def build(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Names, Names]:
    ours = _names("c", args.vms, args.vaults)
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

    def vm(name: str, index: int) -> dict[str, Any]:
        return {
            "name": name,
            "resourceGroup": VM_RG,
            "os": "Windows" if index % 2 else "Linux",
            "powerState": "running",
            "policy": "weekly",
            "protected": True,
            "snapshotMinutes": list(args.snapshot_minutes),
            "transferMinutes": list(args.transfer_minutes),
        }

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
                "vms": [vm(n, i) for i, n in enumerate(ours[v] + base[v])],
            }
            for v in range(1, args.vaults + 1)
        ],
    }
    # The operator configures the chain with the snapshot times they see for these VMs.
    chain = {
        "name": CHAIN,
        "targets": [
            {"vaultId": vault_id(f"bench-{v}", VAULT_RG), "vms": [vm_id(n, VM_RG) for n in ours[v]]}
            for v in range(1, args.vaults + 1)
            if ours[v]
        ],
        "snapshotMinutes": list(args.chain_snapshot_minutes or args.snapshot_minutes),
        "maxParallel": args.max_parallel,
        "staggerSeconds": args.stagger,
        "monitorTransfer": True,
        "retainDays": 30,
    }
    polling = {"shared": args.polling == "shared", "readsPerMinute": args.reads_per_minute}
    return scenario, {"chains": [chain], "polling": polling}, ours, base


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


def watch_polls(stack: Stack) -> tuple[list[int], list[int]]:
    """Per-job polling only: job GETs per VM of the chain, split at the snapshot, from each
    watch_job's custom status (with shared polling the vault pollers read for everyone)."""
    rows = stack.admin(
        "devhost", "GET", "/runtime/webhooks/durabletask/instances", params={"instanceIdPrefix": f"vm:{RUN_ID}:"}
    )
    snap, transfer = [], []
    for row in rows:
        status = row.get("customStatus") or {}
        if row.get("name") != "watch_job" or not isinstance(status, dict):
            continue
        if row["instanceId"].endswith(":snapshot"):
            snap.append(int(status.get("polls", 0)))
        elif row["instanceId"].endswith(":transfer"):
            transfer.append(int(status.get("polls", 0)))
    return snap, transfer


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
def run(args: argparse.Namespace, base: Path) -> int:
    scenario, chains, ours, baseline = build(args)
    our_names = {n for names in ours.values() for n in names}
    base_names = {n for names in baseline.values() for n in names}
    plan = PollPlan.for_minutes(*chains["chains"][0]["snapshotMinutes"])
    print(
        f"chain: {len(our_names)} VMs in {args.vaults} vaults, maxParallel {args.max_parallel}, stagger "
        f"{args.stagger:g} s, snapshotMinutes {chains['chains'][0]['snapshotMinutes']} (dense poll "
        f"{plan.dense_s:g} s from {plan.snapshot_low_s - plan.lead_s:g} s to {plan.snapshot_high_s + plan.lead_s:g} s)"
    )
    print(
        f"polling: {args.polling}"
        + (f", budget {args.reads_per_minute} job reads/min per subscription" if args.polling == "shared" else "")
        + f"; RS emulator ARM throttling {'on' if args.arm_throttling else 'off'}"
    )
    print(
        f"baseline: {len(base_names)} VMs, fixed {args.interval:g} s polling, same parallelism; scenario snapshot "
        f"{args.snapshot_minutes} min, transfer {args.transfer_minutes} min; clock x{args.scale:g}",
        flush=True,
    )
    t0 = time.monotonic()
    stack = Stack.start(base, scenario, chains, time_scale=args.scale, clock_start=CLOCK_START)
    try:
        started_real = time.monotonic()
        topic = stack.topic(DOWNSTREAM_TOPIC)
        scripts = [
            VmScript(f"bench-{v}", VAULT_RG, n, vm_id(n, VM_RG), VM_RG, i)
            for v, names in baseline.items()
            for i, n in enumerate(names)
        ]
        # interleave vaults, as the chain's targets are walked vault by vault per index
        scripts.sort(key=lambda s: (s.index, s.vault))
        poller = ScriptPoller(
            clock=stack.clock,
            arm_url=stack.services["recoveryservices"].url,
            ca_bundle=str(base / "ca-bundle.pem"),
            subscription=SUBSCRIPTION,
            topic_endpoint=topic["endpoint"],
            topic_key=topic["key"],
            scripts=scripts,
            interval_s=args.interval,
            max_parallel=args.max_parallel,
            stagger_s=args.stagger,
            workers=args.workers,
        )
        virtual_start = stack.clock.timestamp()
        if scripts:
            poller.start()
        response = stack.api("POST", f"chains/{CHAIN}/runs", {"runId": RUN_ID})
        if response.status_code != 202:
            print(f"starting the run failed: {response.status_code} {response.text}", file=sys.stderr)
            return 1
        chain_done_at: float | None = None
        deadline = started_real + args.timeout
        last_print = 0.0
        timed_out = False
        while True:
            events = stack.downstream()
            completed = [e for e in events if e.get("type") == PREFIX + "ChainCompleted"]
            if completed and chain_done_at is None:
                chain_done_at = time.monotonic()
            if chain_done_at is not None and (not scripts or poller.done()):
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if time.monotonic() - last_print > args.progress:
                last_print = time.monotonic()
                counts = Counter(str(e.get("type", "")) for e in events)
                host = stack.admin("devhost", "GET", "/admin/host/status")
                elapsed_v = stack.clock.timestamp() - virtual_start
                print(
                    f"  [{time.monotonic() - started_real:6.0f} s real, {elapsed_v / 60:6.1f} min virtual] chain: "
                    f"triggered {counts[PREFIX + 'BackupTriggered']} snapshot {counts[PREFIX + 'SnapshotCompleted']} "
                    f"ended {counts[PREFIX + 'BackupCompleted'] + counts[PREFIX + 'BackupFailed']} | baseline: "
                    f"snapshot {counts[BASELINE_EVENT]}"
                    f" ended {sum(1 for s in scripts if s.ended_at)} | devhost ready {host['readyMessages']} "
                    f"activities {host['pendingActivities']} busy {host['inProgress']}",
                    flush=True,
                )
            time.sleep(2.0)
        wall_chain = (chain_done_at or time.monotonic()) - started_real
        poller.stop()
        wall_base = (
            (poller.finished_at - (poller.started_at or 0.0)) / args.scale if poller.finished_at else float("nan")
        )
        virtual_span = stack.clock.timestamp() - virtual_start

        # --- gather ---------------------------------------------------------------------------------
        records = stack.admin("eventgrid", "GET", "/admin/events", params={"topic": DOWNSTREAM_TOPIC})["events"]
        jobs = stack.admin("recoveryservices", "GET", "/admin/jobs", params={"limit": "1000000"})
        counts = stack.admin("recoveryservices", "GET", "/admin/requests")
        by_op: Counter[str] = Counter(counts["byOperation"])
        ours_ops = by_op - poller.requests
        ours_lag, ours_lag_time, ours_missing = collect_lags(records, jobs, PREFIX + "SnapshotCompleted", our_names)
        base_lag, base_lag_time, base_missing = collect_lags(records, jobs, BASELINE_EVENT, base_names)
        types = Counter(str(r["event"].get("type", "")) for r in records)
        snap_polls, transfer_polls = watch_polls(stack)
        arm_line = throttling_line(stack.admin("recoveryservices", "GET", "/admin/throttling"))
        rss = {name: peak_rss_mib(svc.process.pid) for name, svc in stack.services.items()}
        cpu = {name: cpu_seconds(svc.process.pid) for name, svc in stack.services.items()}
    finally:
        stack.stop()
    setup = started_real - t0
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    self_cpu = resource.getrusage(resource.RUSAGE_SELF)

    n_ours, n_base = max(1, len(our_names)), max(1, len(base_names))
    base_scripts_ok = [s for s in scripts if s.snapshot_seen_at is not None]
    print()
    print(f"Run: {'TIMED OUT after ' + str(args.timeout) + ' s, figures are partial' if timed_out else 'complete'}")
    print(
        f"  stack start {setup:.1f} s; virtual time covered {virtual_span / 3600:.2f} h; "
        f"chain events: {dict((k.rsplit('.', 1)[-1], v) for k, v in sorted(types.items()) if k.startswith('Backup'))}"
    )
    failures = Counter(s.error for s in scripts if s.error)
    if failures:
        print(f"  baseline script errors: {dict(failures)}")
    errors = counts.get("errors") or {}
    if errors:
        print(f"  RS emulator error responses: {errors}")
    print()
    print("Lag, Take Snapshot completed (emulator truth) -> SnapshotCompleted accepted by the downstream topic")
    print(lag_line(f"chain ({len(our_names)} VMs)", ours_lag))
    print(lag_line(f"baseline, fixed {args.interval:g} s ({len(base_names)} VMs)", base_lag))
    print("  (to the event's own 'time', i.e. when the snapshot was seen, before publishing)")
    print(lag_line("chain", ours_lag_time))
    print(lag_line("baseline", base_lag_time))
    if ours_missing or base_missing:
        print(f"  snapshot completed but no event: chain {ours_missing}, baseline {base_missing}")
    print()
    print("ARM calls (Recovery Services emulator request counts; baseline counted client-side, chain = rest)")
    gets_ours = ours_ops["JobDetails_Get"] / n_ours
    gets_base = poller.requests["JobDetails_Get"] / n_base
    calls_ours = sum(ours_ops.values()) / n_ours
    calls_base = sum(poller.requests.values()) / n_base
    print(
        f"  chain:    job-detail GETs/VM {gets_ours:6.2f}   ARM calls/VM {calls_ours:6.2f}   "
        f"total {sum(ours_ops.values())}"
    )
    print(f"            by operation {dict(sorted(ours_ops.items()))}")
    if snap_polls:
        print(
            f"            job GETs/VM in the snapshot phase {statistics.fmean(snap_polls):.2f}, "
            f"in the transfer phase {statistics.fmean(transfer_polls) if transfer_polls else 0:.2f}"
        )
    print(
        f"  baseline: job-detail GETs/VM {gets_base:6.2f}   ARM calls/VM {calls_base:6.2f}   "
        f"total {sum(poller.requests.values())}"
    )
    print(f"            by operation {dict(sorted(poller.requests.items()))}")
    print(arm_line)
    if base_scripts_ok:
        print(
            f"            job GETs/VM in the snapshot phase "
            f"{statistics.fmean(s.gets_to_snapshot for s in base_scripts_ok):.2f}, after it "
            f"{statistics.fmean(s.gets - s.gets_to_snapshot for s in base_scripts_ok):.2f}"
        )
    print()
    print(
        f"Wall time: chain run {wall_chain:.1f} s, baseline {wall_base:.1f} s (real; clock x{args.scale:g}, "
        f"i.e. {wall_chain * args.scale / 3600:.2f} h / {wall_base * args.scale / 3600:.2f} h virtual)"
    )
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
    print()
    if ours_lag and base_lag:
        mean_ours, mean_base = statistics.fmean(ours_lag), statistics.fmean(base_lag)
        lag_ok = mean_ours < mean_base / 3
        calls_ok = calls_ours <= calls_base
        print(
            f"Target (mean lag < 1/3 of baseline at no more ARM calls per VM): "
            f"{'MET' if lag_ok and calls_ok and not timed_out else 'NOT MET'} - mean lag {mean_ours:.1f} s vs "
            f"{mean_base:.1f} s / 3 = {mean_base / 3:.1f} s ({'ok' if lag_ok else 'missed'}); ARM calls/VM "
            f"{calls_ours:.2f} vs {calls_base:.2f} ({'ok' if calls_ok else 'missed'})"
        )
    else:
        print("Target: cannot be judged (no lag figures)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=1000, help="VMs the chain backs up")
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
