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
directory) twice: from source, as Azure runs it (``.funcignore`` leaves ``__pycache__`` out and a
Flex Consumption app runs read-only from its package, so the app's modules are compiled at every
start; site-packages keep the bytecode pip wrote), and with the app's bytecode compiled beforehand.
Then what the first requests add: the Azure SDKs the first activities import, and what the app
defers off the import path (see DEFERRED).

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
# Modules the app keeps off its import path and the first request that loads them (tests/structure/
# test_cold_start.py guards that importing function_app leaves them out).
DEFERRED = {
    "azure.mgmt.recoveryservicesbackup": "first backup / job activity",
    "azure.eventgrid": "first event delivery",
    "azure.identity": "first activity with an Azure client",
    "croniter": "first window or daily-limit computation",
}
# cold: a bare interpreter; app: after the worker's imports; code: after those and the Durable SDK
# too (which the app cannot leave out: DFApp registers every function), so the app's own modules.
MODES = ("cold", "app", "code")
PROBE = """
import importlib.util, json, resource, sys, time
mode, worker, optional, deferred = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4].split(",")
worker += [m for m in optional if importlib.util.find_spec(m.split(".")[0]) is not None]
t = time.perf_counter()
if mode in ("app", "code"):
    for name in worker + (["azure.durable_functions"] if mode == "code" else []):
        __import__(name)
preloaded = time.perf_counter() - t
t = time.perf_counter()
import function_app
functions = function_app.app.get_functions()
indexed = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
left_out = [m for m in deferred if m in sys.modules]
t = time.perf_counter()
for name in deferred:
    __import__(name)
first_requests = time.perf_counter() - t
print(json.dumps({"preloaded": preloaded, "indexed": indexed, "functions": len(functions), "rss_kb": rss,
                  "first_requests": first_requests, "imported_early": left_out,
                  "rss_after_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "app_file": function_app.__file__}))
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


def measure(mode: str, app_dir: Path) -> Probe:
    env = {**os.environ, "BACKUPCHAIN_CONFIG_JSON": CONFIG, "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "BACKUPCHAIN_CONFIG", "PYTHONPATH", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    args = [mode, ",".join(WORKER_MODULES), ",".join(WORKER_OPTIONAL), ",".join(DEFERRED)]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=app_dir, env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not str(result.pop("app_file")).startswith(str(app_dir)):  # the editable install points elsewhere
        raise SystemExit(f"the probe imported another function_app than the copy in {app_dir}")
    result.pop("preloaded")
    return Probe(**result)


def worker_import_ms() -> float:
    code = "import sys, time\nt = time.perf_counter()\nfor m in sys.argv[1:]: __import__(m)\n"
    code += "print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code, *WORKER_MODULES], capture_output=True, text=True, check=True)
    return float(out.stdout) * 1000


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        source = deployed_copy(Path(tmp) / "source")
        compiled = deployed_copy(Path(tmp) / "compiled")
        compileall.compile_dir(compiled, quiet=1)
        variants = {"from source": source, "bytecode": compiled}
        runs: dict[tuple[str, str], list[Probe]] = {(v, m): [] for v in variants for m in MODES}
        worker: list[float] = []
        for _ in range(args.runs):  # interleaved, so load on the machine spreads over every figure alike
            worker.append(worker_import_ms())
            for variant, app_dir in variants.items():
                for mode in MODES:
                    runs[variant, mode].append(measure(mode, app_dir))
    print(f"{args.runs} fresh interpreters each; median (min-max)")
    print(f"worker's own imports before indexing ({', '.join(WORKER_MODULES)}): {spread(worker)}")
    for variant in variants:
        cold, app, code = (runs[variant, mode] for mode in MODES)
        rss = statistics.median(r.rss_kb for r in cold) / 1024
        print(
            f"{variant}: cold import + index function_app {spread([r.indexed * 1000 for r in cold])}, "
            f"{cold[0].functions} functions, peak RSS {rss:.1f} MiB; app's own share "
            f"{spread([r.indexed * 1000 for r in app])}, of it the app's own modules (Durable SDK "
            f"imported first) {spread([r.indexed * 1000 for r in code])}"
        )
    after = runs["bytecode", "app"]
    rss_after = statistics.median(r.rss_after_kb for r in after) / 1024
    print(
        f"deferred to the first requests ({', '.join(DEFERRED)}): "
        f"+{spread([r.first_requests * 1000 for r in after])}, peak RSS then {rss_after:.1f} MiB"
    )
    early = sorted({m for probes in runs.values() for r in probes for m in r.imported_early})
    if early:
        print(f"NOT deferred (function_app's import loads them): {', '.join(early)}")


if __name__ == "__main__":
    main()
