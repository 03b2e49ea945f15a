"""Load: many chains over thousands of VMs at once on devhost + the emulators (scaled clock), with
the Recovery Services emulator enforcing ARM's per-subscription request limits.

Prints: chain-start throughput (runs started per second through the HTTP API, and the time until
every run's ChainStarted reached the downstream topic), snapshot lag (mean, p95, p99; emulator
truth → downstream topic), ARM calls per VM and per virtual minute against the throttling limits
(and 429s), devhost's SQLite task hub size, peak RSS and CPU seconds per service (devhost
with its app worker processes). Figures, not assertions.

    python -m bench.load_bench                                  # 5,000 VMs, 20 vaults, 50 chains
    python -m bench.load_bench --vms 500 --vaults 4 --chains 10  # quick check
    python -m bench.load_bench --polling per-job                 # without the shared read budget
    python -m bench.load_bench --scale 5 --beacons               # Linux VMs send snapshot beacons

With ``--beacons`` every Linux VM (half of them) has the snapshot post-script (docs/beacon.md); the
Linux VMs fill the first chains, which set ``beacons: true``, the Windows VMs the others. Lag and job
reads are printed for beaconed and polled (Windows) VMs apart.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.calendar import CLOCK_START, far_policy_day
from bench.chain_bench import (
    collect_lags,
    cpu_seconds,
    peak_rss_mib,
    percentile,
    subscription_figures,
    throttling_line,
)
from demo.args import signals_held, stop_cleanly_on_signals
from demo.stack import BEACON_TOPIC, DOWNSTREAM_TOPIC, SUBSCRIPTION, Stack, vault_id, vm_id

PREFIX = "BackupChain."
VM_RG, VAULT_RG = "rg-app", "rg-backup"


def linux(index: int) -> bool:
    return index % 2 == 0


def build(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Scenario (VMs round-robin over vaults) and config (chains take consecutive slices, so
    each chain spans several vaults, as real application tiers do)."""
    policy_day = far_policy_day()  # never reached in the run
    policy = {"name": "weekly", "frequency": "Weekly", "days": [policy_day], "time": "02:00", "timeZone": "UTC"}
    names = [f"l{i % args.vaults + 1:02d}-{i + 1:05d}" for i in range(args.vms)]
    vault_of = {n: f"load-{i % args.vaults + 1:02d}" for i, n in enumerate(names)}
    scenario = {
        "subscriptionId": SUBSCRIPTION,
        "seed": args.seed,
        "throttling": {"enabled": not args.no_arm_throttling},
        "vaults": [
            {
                "resourceGroup": VAULT_RG,
                "name": f"load-{v:02d}",
                "location": "japaneast",
                "policies": [{**policy, "retentionDays": 30}],
                "vms": [
                    {
                        "name": n,
                        "resourceGroup": VM_RG,
                        "os": "Linux" if linux(i) else "Windows",
                        "powerState": "running",
                        "policy": "weekly",
                        "protected": True,
                        "snapshotMinutes": list(args.snapshot_minutes),
                        "transferMinutes": list(args.transfer_minutes),
                        **(
                            {"postScript": {"topic": BEACON_TOPIC, "gapSeconds": args.beacon_gap}}
                            if args.beacons and linux(i)
                            else {}
                        ),
                    }
                    for i, n in enumerate(names)
                    if vault_of[n] == f"load-{v:02d}"
                ],
            }
            for v in range(1, args.vaults + 1)
        ],
    }
    per_chain = math.ceil(args.vms / args.chains)
    # With beacons, the Linux VMs fill the first chains (beacons: true) and the Windows VMs the rest,
    # as docs/configuration.md asks: a Windows VM has no beacon to wait for.
    beaconed = {n for i, n in enumerate(names) if args.beacons and linux(i)}
    ordered = sorted(names, key=lambda n: n not in beaconed)
    chains = []
    for c in range(args.chains):
        mine = ordered[c * per_chain : (c + 1) * per_chain]
        by_vault: dict[str, list[str]] = {}
        for n in mine:
            by_vault.setdefault(vault_of[n], []).append(vm_id(n, VM_RG))
        chains.append(
            {
                "name": f"load{c + 1:02d}",
                "targets": [{"vaultId": vault_id(v, VAULT_RG), "vms": vms} for v, vms in sorted(by_vault.items())],
                "snapshotMinutes": list(args.snapshot_minutes),
                "maxParallel": args.max_parallel,
                "staggerSeconds": args.stagger,
                "monitorTransfer": True,
                "retainDays": 30,
                **({"beacons": True} if mine and all(n in beaconed for n in mine) else {}),
            }
        )
    polling = {"shared": args.polling == "shared", "readsPerMinute": args.reads_per_minute}
    return scenario, {"chains": chains, "polling": polling}, names


def sqlite_mib(base: Path) -> float:
    return sum(p.stat().st_size for p in (base / "devhost").glob("state.db*")) / 2**20


def run(args: argparse.Namespace, base: Path) -> int:
    scenario, config, names = build(args)
    print(
        f"load: {args.vms} VMs, {args.vaults} vaults, {args.chains} chains (maxParallel {args.max_parallel} each), "
        f"clock x{args.scale:g}; polling {args.polling}"
        + (f" (budget {args.reads_per_minute} reads/min)" if args.polling == "shared" else "")
        + f"; ARM throttling {'off' if args.no_arm_throttling else 'on'}"
        + f"; devhost app worker processes {args.workers or 'none (in-process)'}",
        flush=True,
    )
    t0 = time.monotonic()
    workers = {"FUNCTIONS_WORKER_PROCESS_COUNT": str(args.workers)} if args.workers else {}
    stack = Stack.start(base, scenario, config, time_scale=args.scale, extra_env=workers, clock_start=CLOCK_START)
    try:
        setup = time.monotonic() - t0
        started = time.monotonic()
        for chain in config["chains"]:
            response = stack.api("POST", f"chains/{chain['name']}/runs", {"runId": "load"})
            if response.status_code != 202:
                print(f"starting {chain['name']} failed: {response.status_code} {response.text}", file=sys.stderr)
                return 1
        accepted = time.monotonic() - started
        all_started: float | None = None
        deadline = started + args.timeout
        last = 0.0
        while time.monotonic() < deadline:
            counts = Counter(str(e.get("type", "")) for e in stack.downstream())
            if all_started is None and counts[PREFIX + "ChainStarted"] >= args.chains:
                all_started = time.monotonic() - started
            if counts[PREFIX + "ChainCompleted"] >= args.chains:
                break
            if time.monotonic() - last > args.progress:
                last = time.monotonic()
                host = stack.admin("devhost", "GET", "/admin/host/status")
                print(
                    f"  [{last - started:6.0f} s] started {counts[PREFIX + 'ChainStarted']} triggered "
                    f"{counts[PREFIX + 'BackupTriggered']} snapshot {counts[PREFIX + 'SnapshotCompleted']} ended "
                    f"{counts[PREFIX + 'BackupCompleted'] + counts[PREFIX + 'BackupFailed']} chains done "
                    f"{counts[PREFIX + 'ChainCompleted']} | devhost ready {host['readyMessages']} activities "
                    f"{host['pendingActivities']} | task hub {sqlite_mib(base):.0f} MiB",
                    flush=True,
                )
            time.sleep(2.0)
        wall = time.monotonic() - started
        timed_out = wall >= args.timeout
        records = stack.admin("eventgrid", "GET", "/admin/events", params={"topic": DOWNSTREAM_TOPIC})["events"]
        jobs = stack.admin("recoveryservices", "GET", "/admin/jobs", params={"limit": "10000000"})
        requests = stack.admin("recoveryservices", "GET", "/admin/requests")
        throttling = stack.admin("recoveryservices", "GET", "/admin/throttling")
        arm_line = throttling_line(throttling)
        rss = {name: peak_rss_mib(svc.process.pid) for name, svc in stack.services.items()}
        cpu = {name: cpu_seconds(svc.process.pid) for name, svc in stack.services.items()}
        hub = sqlite_mib(base)
    finally:
        with signals_held():
            stack.stop()
    lags, _, missing = collect_lags(records, jobs, PREFIX + "SnapshotCompleted", set(names))
    beaconed = {n for i, n in enumerate(names) if args.beacons and linux(i)}
    groups = {"beaconed": beaconed, "polled": set(names) - beaconed} if beaconed else {}
    types = Counter(str(r["event"].get("type", "")).removeprefix(PREFIX) for r in records)
    total_calls = sum(requests["byOperation"].values())
    sub = subscription_figures(throttling)
    minutes = [m for m in sub.get("minutes") or [] if m.get("reads", 0) + m.get("writes", 0)]
    print()
    outcome = "TIMED OUT, figures are partial" if timed_out else "complete"
    print(f"Run: {outcome} in {wall:.0f} s real (setup {setup:.0f} s)")
    print(f"  events: {dict(sorted(types.items()))}")
    ids = Counter(str(r["event"].get("id")) for r in records if r["event"].get("type") == PREFIX + "SnapshotCompleted")
    print(f"  SnapshotCompleted published more than once (same id): {sum(n - 1 for n in ids.values())}")
    print(
        f"Chain starts: {args.chains} accepted by the HTTP API in {accepted:.2f} s "
        f"({args.chains / max(accepted, 1e-9):.1f}/s); all ChainStarted downstream after "
        f"{all_started if all_started is not None else float('nan'):.2f} s"
    )
    if lags:
        print(
            f"Snapshot lag (truth -> downstream topic): mean {statistics.fmean(lags):.1f} s, p95 "
            f"{percentile(lags, 0.95):.1f} s, p99 {percentile(lags, 0.99):.1f} s, max {max(lags):.1f} s (n={len(lags)})"
        )
    for label, members in groups.items():
        part, _, part_missing = collect_lags(records, jobs, PREFIX + "SnapshotCompleted", members)
        reads = [j["reads"] for j in jobs if j.get("userTriggered") and j["vm"] in members]
        to_snapshot = sum(int(r["toSnapshot"]) for r in reads) / max(1, len(members))
        after = sum(int(r["afterSnapshot"]) for r in reads) / max(1, len(members))
        lag = (
            f"mean {statistics.fmean(part):.1f} s, p95 {percentile(part, 0.95):.1f} s, "
            f"p99 {percentile(part, 0.99):.1f} s"
            if part
            else "n/a"
        )
        print(
            f"  {label} ({len(members)} VMs): lag {lag}; job reads/VM {to_snapshot + after:.2f} (to the snapshot "
            f"{to_snapshot:.2f}, after it {after:.2f}); no event {part_missing}"
        )
    if missing:
        print(f"  snapshot completed but no SnapshotCompleted: {missing}")
    print(
        f"ARM calls: {total_calls} in all, {total_calls / max(1, args.vms):.2f} per VM; job GETs "
        f"{requests['byOperation'].get('JobDetails_Get', 0) / max(1, args.vms):.2f} per VM"
    )
    if minutes:
        reads = [m["reads"] for m in minutes]
        print(
            f"  per virtual minute: reads mean {statistics.fmean(reads):.0f}, max {max(reads)}; writes max "
            f"{max(m['writes'] for m in minutes)}; minutes with 429s {sum(1 for m in minutes if m.get('throttled'))}"
        )
    print(arm_line)
    print(f"devhost task hub (SQLite incl. WAL): {hub:.1f} MiB")
    print("Peak RSS (VmHWM): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items() if v is not None))
    print("CPU seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if v is not None))
    return 0 if not timed_out else 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--vaults", type=int, default=20)
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--scale", type=float, default=20.0, help="virtual seconds per real second")
    parser.add_argument("--max-parallel", type=int, default=50, help="each chain's maxParallel")
    parser.add_argument("--stagger", type=float, default=5.0, help="each chain's staggerSeconds")
    parser.add_argument("--snapshot-minutes", type=float, nargs=2, default=(6.0, 9.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--transfer-minutes", type=float, nargs=2, default=(15.0, 25.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--polling", choices=("shared", "per-job"), default="shared")
    parser.add_argument("--beacons", action="store_true", help="Linux VMs send snapshot beacons; chains use them")
    parser.add_argument("--beacon-gap", type=float, default=5.0, help="beacon -> job shows the snapshot (s)")
    parser.add_argument("--reads-per-minute", type=int, default=1000, help="the app's job-read budget per subscription")
    parser.add_argument("--no-arm-throttling", action="store_true", help="the RS emulator does not throttle")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="devhost's FUNCTIONS_WORKER_PROCESS_COUNT (0: orchestrations replay in devhost's own process)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many real seconds")
    parser.add_argument("--progress", type=float, default=30.0)
    parser.add_argument("--keep", default=None, help="keep the stack's files (logs, task hub) in this directory")
    args = parser.parse_args()
    stop_cleanly_on_signals()  # stopped by a signal, the stack's processes still stop
    if args.keep:
        return run(args, Path(args.keep))
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
