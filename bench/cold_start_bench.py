"""Cold start: the time and peak memory of importing and indexing ``function_app`` in a fresh
interpreter (what the Python worker does when an instance starts), median of several runs, and
what the first activity's deferred SDK imports add.

    python -m bench.cold_start_bench [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from demo.stack import REPO, vault_id, vm_id

CONFIG = json.dumps({"chains": [{"name": "c1", "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("a")]}]}]})
PROBE = """
import json, resource, sys, time
t = time.perf_counter()
import function_app
functions = function_app.app.get_functions()
indexed = time.perf_counter() - t
rss_indexed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if sys.argv[1] == "sdk":
    import azure.mgmt.recoveryservicesbackup, azure.eventgrid, azure.identity  # what the first activities load
sdk = time.perf_counter() - t
print(json.dumps({"indexed": indexed, "functions": len(functions), "rss_kb": rss_indexed, "sdk": sdk,
                  "rss_after_sdk_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure(mode: str) -> dict[str, float]:
    env = {**os.environ, "BACKUPCHAIN_CONFIG_JSON": CONFIG}
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs = [measure("sdk") for _ in range(args.runs)]
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(
        f"import + index function_app: {med['indexed'] * 1000:.0f} ms median of {args.runs} "
        f"({int(med['functions'])} functions), peak RSS {med['rss_kb'] / 1024:.1f} MiB"
    )
    print(
        f"deferred Azure SDK imports (first activity): +{med['sdk'] * 1000:.0f} ms, "
        f"peak RSS then {med['rss_after_sdk_kb'] / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
