"""devhost figures: orchestrations completed per second for a 5-activity chain (devhost as a real
subprocess, started over HTTP), and replay cost per episode against history length (the SDK's own
replay of 100 / 1,000 / 5,000 history events, in process).

Orchestrator and entity episodes run in one app worker process by default, as on Azure, where the
Python worker always runs apart from the Functions host (``FUNCTIONS_WORKER_PROCESS_COUNT``,
default 1); ``--workers 0`` runs them in devhost's own process, as the tests do.

    python -m bench.devhost_bench [--orchestrations 300] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import azure.functions as func
import requests

from devhost import history as h
from devhost.indexing import index_app
from devhost.orchestration import Episode, new_state
from devhost.procs import start_service
from devhost.store import InstanceRow, Message
from devhost.workers import SETTING as WORKERS_SETTING

APP_DIR = Path(__file__).parent / "apps" / "devhost_bench"


def throughput(count: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        svc = start_service(
            "devhost",
            ["devhost", "start", "--app-dir", str(APP_DIR), "--port", "0", "--state", str(state), "--no-auth"],
            log_dir=Path(tmp),
            env={"DEVHOST_CLOCK_MODE": "real", WORKERS_SETTING: str(workers) if workers else ""},
        )
        try:
            base = svc.url + "/runtime/webhooks/durabletask"
            session = requests.Session()
            started = time.monotonic()
            for i in range(count):
                response = session.post(f"{base}/orchestrators/chain5/bench-{i}", json=0, timeout=30)
                response.raise_for_status()
            submitted = time.monotonic() - started
            # Wait on the host's backlog (cheap), not on instance queries: a query answers one page
            # of 100 at most and costs devhost work proportional to the instances it lists.
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if session.get(f"{svc.url}/admin/host/status", timeout=30).json()["idle"]:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            params = {"runtimeStatus": "Completed", "top": str(count)}
            done = len(session.get(f"{base}/instances", params=params, timeout=30).json())
            print(
                f"5-activity chains: {done}/{count} completed in {elapsed:.1f} s "
                f"(submitted in {submitted:.1f} s) -> {done / elapsed:.1f} orchestrations/s, "
                f"{done * 6 / elapsed:.0f} function executions/s; app worker processes {workers}"
            )
        finally:
            svc.stop()


def _build_history(spec: Any, activities: int) -> tuple[InstanceRow, list[dict[str, Any]], list[Message]]:
    """Drive real episodes until ``activities`` results are in history; return the instance, its
    history and the messages of the next (to be timed) episode."""
    # Inputs reach orchestrators as JSON text, as the SDK client sends them.
    inst = InstanceRow(
        instance_id="bench",
        name="sequence",
        execution_id="e1",
        status="Running",
        input=json.dumps(str(activities)),
        output=None,
        custom_status=None,
        created_time=0.0,
        last_updated_time=0.0,
        parent_instance_id=None,
        parent_execution_id=None,
        parent_task_id=None,
        version=None,
        state=new_state(),
    )
    started = h.execution_started(0.0, "sequence", "bench", "e1", str(activities), None, None)
    messages = [Message(1, "bench", "e1", "event", {"event": started}, 0.0)]
    history: list[dict[str, Any]] = []
    now = 1.0
    for _ in range(activities):
        episode = Episode(inst, history, now, 2)
        work = episode.run(messages, lambda body: spec.user_function(func.OrchestrationContext(body)))
        history += work.new_history
        inst.state = episode.state
        task_id, _, input_ = work.activities[0]
        done = h.event(h.TASK_COMPLETED, now, TaskScheduledId=task_id, Result=json.dumps(int(input_ or 0) + 1))
        messages = [Message(2, "bench", "e1", "event", {"event": done}, now)]
        now += 1.0
    return inst, history, messages


def replay_cost(sizes: list[int]) -> None:
    spec = index_app("function_app", APP_DIR).durable("orchestrationTrigger", "sequence")
    assert spec is not None
    for size in sizes:
        # each activity adds OrchestratorStarted, TaskCompleted, TaskScheduled, OrchestratorCompleted
        inst, history, messages = _build_history(spec, max(1, size // 4))
        timings = []
        for _ in range(5):
            episode = Episode(inst, history, 1e6, 2)
            t0 = time.perf_counter()
            episode.run(messages, lambda body: spec.user_function(func.OrchestrationContext(body)))
            timings.append(time.perf_counter() - t0)
        print(
            f"replay of {len(history):>5} history events: {statistics.median(timings) * 1000:8.2f} ms per episode "
            f"(median of 5)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orchestrations", type=int, default=300)
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument(
        "--workers", type=int, default=1, help="app worker processes (FUNCTIONS_WORKER_PROCESS_COUNT; 0: in devhost)"
    )
    args = parser.parse_args()
    throughput(args.orchestrations, args.workers)
    replay_cost([int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
