"""Orchestrator and entity episodes in worker processes, as the Functions host runs the Python
worker apart from itself (``FUNCTIONS_WORKER_PROCESS_COUNT`` of them). Replaying a history — the
Durable SDK parses every event of it — is devhost's heaviest CPU work; in one process it holds one
core however many the machine has. Unset, episodes run in devhost's own process (fast start-up
for tests)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import azure.functions as func

from devhost.indexing import AppIndex, index_app
from devhost.settings import HostConfigError

log = logging.getLogger("devhost")
SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
MAX_WORKERS = 10  # Azure's limit for the setting
RUN_ATTEMPTS = 3  # fresh pools to try an episode on before giving it back to the dispatcher

_index: AppIndex | None = None  # the worker process's own index of the app


class WorkerLost(RuntimeError):
    """The episode's worker process died (killed, crashed): a host failure, not the function's.
    Nothing was committed, so the dispatcher runs the episode again later."""


def worker_count(environ: Mapping[str, str] = os.environ) -> int:
    """0 (in-process) when the setting is unset; otherwise 1-10, as Azure allows."""
    raw = environ.get(SETTING, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise HostConfigError(f"app setting {SETTING} must be a whole number from 1 to {MAX_WORKERS}, got {raw!r}")
    return int(raw)


def context_for(trigger_type: str, body: str) -> func.OrchestrationContext | func.EntityContext:
    if trigger_type == "orchestrationTrigger":
        return func.OrchestrationContext(body)
    return func.EntityContext(body)


def _start_worker(module_name: str, app_dir: str) -> None:
    global _index
    _index = index_app(module_name, Path(app_dir))


def _episode(trigger_type: str, name: str, body: str) -> str:
    assert _index is not None, "worker process not initialised"
    spec = _index.durable(trigger_type, name)
    if spec is None:
        raise LookupError(f"The function '{name}' doesn't exist, is disabled, or is not a {trigger_type} function.")
    return str(spec.user_function(context_for(trigger_type, body)))


class EpisodeWorkers:
    """A pool of app worker processes. A worker that dies (killed, crashed) breaks the whole
    pool: it is replaced and the episode run again on the new one (replays are side-effect free
    until devhost commits them)."""

    def __init__(self, count: int, module_name: str, app_dir: Path):
        self.count = count
        self._args = (module_name, str(app_dir))
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: devhost has threads running; forking them is unsafe.
        return ProcessPoolExecutor(
            self.count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._args,
        )

    def run(self, trigger_type: str, name: str, body: str) -> str:
        for _ in range(RUN_ATTEMPTS):
            pool = self._pool
            try:
                return pool.submit(_episode, trigger_type, name, body).result()
            except BrokenProcessPool:
                with self._lock:
                    if self._pool is pool:
                        log.warning("devhost: an app worker process died; starting new ones")
                        self._pool = self._new_pool()
        raise WorkerLost(f"app worker processes kept dying while running {name}")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
