"""Fault runs at scale: the fault suite's seeded cases (``harness/faults``, run by ``tests/faults``)
over several seeds, one after the other, each checked with the same invariant checker. Prints one row per seed: VMs,
faults the Recovery Services emulator injected (by kind), devhost kills, the wider world's faults
carried out (ARM outages on Backups_Trigger, downstream topic refusals / outages / Event Grid
SIGKILLs, refused resumes and stops), invariant violations (0 expected) and wall time; then per
seed what the world did, and each violation in full.

    python -m bench.fault_bench [--scale large] [--seeds 11 14 15] [--keep DIR]

Every ``--seeds`` value is one case; ``--scale small`` runs the CI size. The exit code is 1 if any
invariant was violated (the figures are the point; the code lets a script notice)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.faults.driver import run_case
from harness.faults.scenarios import SCALES, generate

KINDS = ("429", "500", "503", "drop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="large")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 14, 15])
    parser.add_argument("--keep", type=Path, default=None, help="keep each case's stack directory (logs) here")
    args = parser.parse_args(argv)

    header = (
        f"{'seed':>5} {'gc mode':<15} {'VMs':>4} "
        + " ".join(f"{k:>5}" for k in KINDS)
        + f" {'calls':>6} {'kills':>5} {'world':>5} {'refused':>7} {'violations':>10} {'virtual':>8} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    worlds: list[str] = []
    total = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fault-bench-") as tmp:
        root = args.keep or Path(tmp)
        for seed in args.seeds:
            case = generate(seed, args.scale)
            began = time.monotonic()
            driven, report = run_case(case, root / case.label)
            wall = time.monotonic() - began
            calls = int(driven.requests.get("total", 0))
            virtual = f"{driven.chain_seconds / 3600:.1f} h"
            refused = sum(v for k, v in driven.faults_injected.items() if not k.isdigit() and k != "drop")
            print(
                f"{seed:>5} {case.gc_mode:<15} {len(case.vms):>4} "
                + " ".join(f"{driven.faults_injected.get(k, 0):>5}" for k in KINDS)
                + f" {calls:>6} {len(driven.kills):>5} {len(driven.world):>5} {refused:>7}"
                + f" {len(report.violations):>10} {virtual:>8} {wall:>7.0f}",
                flush=True,
            )
            worlds.append(f"seed {seed}: {case.world()}")
            stats = report.stats
            worlds.append(
                f"    run outcome {stats.get('outcome')}, failed at trigger {stats.get('failedAtTrigger')}, "
                f"undelivered {stats.get('undelivered')}, redeliveries {stats.get('duplicateDeliveries')}"
            )
            for done in driven.world:
                worlds.append("    " + ", ".join(f"{k}={v}" for k, v in done.items()))
            if driven.skipped_kills:
                worlds.append(f"    not reached: {driven.skipped_kills}")
            if not report.ok:
                failures.append(f"seed {seed}: {case.describe()}\n{report.text()}\nlogs: {driven.base}")
    print(f"\n{len(args.seeds)} cases at scale {args.scale} in {time.monotonic() - total:.0f} s wall")
    print("columns: faults the Recovery Services emulator injected (429 with Retry-After, 500, 503, dropped")
    print("connections), its ARM calls, devhost SIGKILLs, invariant violations, the run's virtual time to")
    print("ChainCompleted, wall time; world: ARM outages and downstream faults carried out; refused: requests")
    print("answered with a permanent error (AuthorizationFailed / ResourceNotFound on resume or stop)")
    print("\n" + "\n".join(worlds))
    for failure in failures:
        print("\n" + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
