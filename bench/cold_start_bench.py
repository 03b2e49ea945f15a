"""Cold start: what the Python worker pays to load the app when an instance starts, each figure the
median (min-max) of several fresh interpreters.

The worker has imported its own modules before it indexes the app: its dispatcher imports asyncio,
concurrent.futures, grpc and the protobuf messages at start, and its worker-init handler imports
azure.functions (``bindings.load_binding_registry``) before ``loader.index_function_app`` imports
``function_app`` and calls ``app.get_functions()`` (Azure/azure-functions-python-worker,
azure_functions_worker/dispatcher.py and loader.py). So three figures:

- cold: ``import function_app`` + ``get_functions()`` in a bare interpreter (everything);
- app's own share: the same after the worker's modules are imported (what the app adds);
- of that, the app's own modules: the same after the Durable SDK is imported too.

Each is taken on the deployed package (the repository minus ``.funcignore``, copied to a temporary
directory): from source, as Azure runs it (``.funcignore`` leaves ``__pycache__`` out and a Flex
Consumption app runs read-only from its package, so the app's modules are compiled at every start;
site-packages keep the bytecode pip wrote; learn.microsoft.com/azure/azure-functions/run-functions-
from-deployment-package); with the app's bytecode compiled beforehand; and from
source with Application Insights configured, as infra deploys the app (telemetry.configure() then
loads the Azure Monitor distro at import). Then what the first requests add: the modules the app
keeps off its import path (DEFERRED) that are not loaded yet.

    python -m bench.cold_start_bench [--runs 7]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pathspec

from demo.stack import REPO, vault_id, vm_id

CONFIG = json.dumps({"chains": [{"name": "c1", "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("a")]}]}]})
# What the worker imports before it indexes the app (dispatcher.py's imports, then azure.functions
# at worker init); grpc and protobuf are timed only where installed (not in this repository's venv).
WORKER_MODULES = ("asyncio", "concurrent.futures", "logging", "platform", "queue", "threading", "azure.functions")
WORKER_OPTIONAL = ("grpc", "google.protobuf")
# Application Insights as infra configures it (telemetry.configure() runs at import), kept on
# loopback: ingestion and live metrics at a closed local port, no statsbeat; the host's
# FUNCTIONS_WORKER_RUNTIME tells the distro's resource detectors not to probe a VM's IMDS.
APP_INSIGHTS_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
APP_INSIGHTS = {
    APP_INSIGHTS_SETTING: "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "FUNCTIONS_WORKER_RUNTIME": "python",
}
# Modules the app keeps off its import path, each loaded by its first request that needs it
# (tests/structure/test_cold_start.py guards that importing function_app leaves them out).
DEFERRED = (
    "azure.mgmt.recoveryservicesbackup",  # the first backup / job read
    "azure.eventgrid",  # the first event delivery
    "azure.identity",  # the first activity with an Azure client
    "croniter",  # the scheduler's first window; a configuration with a window loads it at start
)
# cold: a bare interpreter; app: after the worker's imports; code: after those and the Durable SDK
# too (which the app cannot leave out: DFApp registers every function), so the app's own modules.
MODES = ("cold", "app", "code")
PROBE = """
import importlib.util, json, os, resource, sys, time
mode, worker, optional, deferred = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4].split(",")
worker += [m for m in optional if importlib.util.find_spec(m.split(".")[0]) is not None]
if mode in ("app", "code"):
    for name in worker + (["azure.durable_functions"] if mode == "code" else []):
        __import__(name)
t = time.perf_counter()
import function_app
functions = function_app.app.get_functions()
indexed = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
imported_early = [m for m in deferred if m in sys.modules]
t = time.perf_counter()
for name in deferred:
    __import__(name)
first_requests = time.perf_counter() - t
print(json.dumps({"indexed": indexed, "functions": len(functions), "rss_kb": rss,
                  "first_requests": first_requests, "imported_early": imported_early,
                  "rss_after_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "app_file": function_app.__file__}), flush=True)
os._exit(0)  # no exit-time telemetry flush to a closed port
"""


def deployed_copy(into: Path) -> Path:
    """The files a deployment ships (tracked and untracked-but-not-ignored, minus ``.funcignore``)."""
    rules = pathspec.PathSpec.from_lines("gitwildmatch", (REPO / ".funcignore").read_text().splitlines())
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in listed:
        if not rules.match_file(path) and (REPO / path).is_file():
            (into / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, into / path)
    return into


@dataclass(frozen=True)
class Probe:
    """One fresh interpreter's figures (seconds, KiB)."""

    indexed: float
    functions: int
    rss_kb: float
    first_requests: float
    rss_after_kb: float
    imported_early: list[str]


@dataclass(frozen=True)
class Variant:
    name: str
    app_dir: Path
    env: dict[str, str]


def measure(mode: str, variant: Variant) -> Probe:
    env = {**os.environ, "BACKUPCHAIN_CONFIG_JSON": CONFIG, "PYTHONDONTWRITEBYTECODE": "1"}
    for name in (APP_INSIGHTS_SETTING, "BACKUPCHAIN_CONFIG", "PYTHONPATH", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    args = [mode, ",".join(WORKER_MODULES), ",".join(WORKER_OPTIONAL), ",".join(DEFERRED)]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=variant.app_dir,
        env={**env, **variant.env},
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not str(result.pop("app_file")).startswith(str(variant.app_dir)):  # the editable install points elsewhere
        raise SystemExit(f"the probe imported another function_app than the copy in {variant.app_dir}")
    return Probe(**result)


def worker_import_ms() -> float:
    code = "import sys, time\nt = time.perf_counter()\nfor m in sys.argv[1:]: __import__(m)\n"
    code += "print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code, *WORKER_MODULES], capture_output=True, text=True, check=True)
    return float(out.stdout) * 1000


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms ({min(values):.0f}-{max(values):.0f})"


def report(variant: Variant, runs: dict[str, list[Probe]]) -> None:
    cold, app, code = (runs[mode] for mode in MODES)
    rss = statistics.median(r.rss_kb for r in cold) / 1024
    rss_after = statistics.median(r.rss_after_kb for r in app) / 1024
    print(f"{variant.name}:")
    print(
        f"  cold import + index function_app {spread([r.indexed * 1000 for r in cold])} "
        f"({cold[0].functions} functions, peak RSS {rss:.1f} MiB)"
    )
    print(f"  app's own share (after the worker's imports) {spread([r.indexed * 1000 for r in app])}")
    print(f"  of it the app's own modules (Durable SDK imported too) {spread([r.indexed * 1000 for r in code])}")
    print(
        f"  first requests' deferred imports (any still missing of {', '.join(DEFERRED)}) "
        f"+{spread([r.first_requests * 1000 for r in app])}, peak RSS then {rss_after:.1f} MiB"
    )
    early = sorted({m for probes in runs.values() for r in probes for m in r.imported_early})
    if early:
        print(f"  already imported by function_app: {', '.join(early)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        source = deployed_copy(Path(tmp) / "source")
        compiled = deployed_copy(Path(tmp) / "compiled")
        compileall.compile_dir(compiled, quiet=1)
        variants = (
            Variant("from source, Application Insights off", source, {}),
            Variant("bytecode compiled beforehand, Application Insights off", compiled, {}),
            Variant("from source, Application Insights on (as infra deploys it)", source, APP_INSIGHTS),
        )
        runs: dict[str, dict[str, list[Probe]]] = {v.name: {m: [] for m in MODES} for v in variants}
        worker: list[float] = []
        for _ in range(args.runs):  # interleaved, so load on the machine spreads over every figure alike
            worker.append(worker_import_ms())
            for variant in variants:
                for mode in MODES:
                    runs[variant.name][mode].append(measure(mode, variant))
    print(f"{args.runs} fresh interpreters each; median (min-max)")
    print(f"worker's own imports before indexing ({', '.join(WORKER_MODULES)}): {spread(worker)}")
    for variant in variants:
        report(variant, runs[variant.name])


if __name__ == "__main__":
    main()
