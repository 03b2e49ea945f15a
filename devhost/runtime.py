"""The Durable runtime: dispatches orchestration episodes, activities, entity batches and
timers out of the SQLite task hub, and offers the operations the management API exposes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.functions import meta

from devhost import history as h
from devhost import versioning
from devhost.indexing import AppIndex
from devhost.instance_ids import entity_instance_id, split_entity_id
from devhost.invoke import Invoker, decode, encode, failure_text, serialized_cause
from devhost.orchestration import Episode, Work, new_state
from devhost.settings import HostConfig
from devhost.store import InstanceRow, Message, Store
from devhost.workers import EpisodeWorkers, WorkerLost
from localclock.clock import Clock

log = logging.getLogger("devhost")

ACTIVE = ("Pending", "Running", "Suspended")
# A target whose messages fail this many processing attempts in a row is parked (poison). Five is
# the default MaxDequeueCount of the Functions queue trigger and of DurableTask.AzureStorage's
# opt-in poison-message storage (Azure/durabletask PR #1366); without it that backend retries forever.
MAX_PROCESSING_ATTEMPTS = 5


class InstanceExists(Exception):
    pass


class NotFound(Exception):
    pass


class Gone(Exception):
    pass


class Runtime:
    def __init__(
        self,
        index: AppIndex,
        store: Store,
        clock: Clock,
        config: HostConfig,
        schema: int = 2,
        workers: EpisodeWorkers | None = None,
    ):
        self.index = index
        self.workers = workers
        self.store = store
        self.clock = clock
        self.config = config
        self.schema = schema
        self.busy: set[str] = set()
        self.running_activities: set[int] = set()
        self.orchestrator_pool = ThreadPoolExecutor(config.max_concurrent_orchestrators, "orchestrator")
        self.function_pool = ThreadPoolExecutor(max(4, config.max_concurrent_activities), "function")
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.invoker: Invoker | None = None
        # The JSON a ``durableClient`` input binding receives (set by the server once the management
        # API is up); any function may take one, activities included.
        self.client_binding: Callable[[], Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failing: set[str] = store.failing_targets()

    # --- lifecycle ----------------------------------------------------------------------------
    def wake(self) -> None:
        if self._wake is None or self.loop is None:
            return
        if _on_loop(self.loop):
            # The dispatcher wakes itself after every episode and activity: setting the event
            # directly spares a write to the loop's self-pipe and a trip through its callbacks.
            self._wake.set()
        else:
            self.loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.invoker = Invoker(self.loop, self.function_pool, self.config.function_timeout, self.workers)
        tasks: set[asyncio.Task[None]] = set()
        while not self._stopping:
            self._wake.clear()
            now = self.clock.timestamp()
            free = self.config.max_concurrent_orchestrators - len(self.busy)
            if free > 0:
                for target in self.store.ready_targets(now, limit=free + len(self.busy)):
                    if target in self.busy or free <= 0:
                        continue
                    self.busy.add(target)
                    free -= 1
                    task = asyncio.create_task(self._process(target))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            free_act = self.config.max_concurrent_activities - len(self.running_activities)
            if free_act > 0:
                for item in self.store.pending_activities(self.running_activities, free_act):
                    self.running_activities.add(item.id)
                    task = asyncio.create_task(self._run_activity(item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_delay(now))
        for task in list(tasks):
            task.cancel()

    def _idle_delay(self, now: float) -> float:
        """How long the dispatcher may sleep: until the next delayed message is due, polling a
        manual clock (another process may advance it) and never more than a second."""
        due = self.store.next_visible_at()
        if due is None or due <= now:
            return 1.0 if due is None else 0.05
        delay = self.clock.real_delay(due - now)
        return 0.1 if delay is None else max(0.005, min(1.0, delay))

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        self.orchestrator_pool.shutdown(wait=False, cancel_futures=True)
        self.function_pool.shutdown(wait=False, cancel_futures=True)
        if self.workers is not None:
            self.workers.shutdown()

    # --- client operations --------------------------------------------------------------------
    def start(self, name: str, instance_id: str | None, input_value: Any, version: str | None = None) -> str:
        spec = self.index.durable("orchestrationTrigger", name)
        if spec is None:
            raise NotFound(f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function.")
        instance_id = instance_id or uuid.uuid4().hex
        now = self.clock.timestamp()
        with self.store.transaction() as db:
            existing = self.store.get_instance(instance_id, db)
            if existing is not None and existing.status in ACTIVE:
                raise InstanceExists(f"An Orchestration instance with the status {existing.status} already exists.")
            if existing is not None:
                self.store.delete_instance(db, instance_id)
            version = versioning.new_instance_version(version, self.config)
            self._create(db, spec.durable_name, instance_id, input_value, None, now, version)
        self.wake()
        return instance_id

    def _create(
        self,
        db: Any,
        name: str,
        instance_id: str,
        input_value: Any,
        parent: tuple[str, str, int] | None,
        now: float,
        version: str | None = None,
    ) -> None:
        execution_id = uuid.uuid4().hex
        inst = InstanceRow(
            instance_id=instance_id,
            name=name,
            execution_id=execution_id,
            status="Pending",
            input=json.dumps(input_value),
            output=None,
            custom_status=None,
            created_time=now,
            last_updated_time=now,
            parent_instance_id=parent[0] if parent else None,
            parent_execution_id=parent[1] if parent else None,
            parent_task_id=parent[2] if parent else None,
            version=version,
            state=new_state(),
        )
        self.store.put_instance(db, inst)
        parent_info = (
            {
                "Name": None,
                "OrchestrationInstance": {"InstanceId": parent[0], "ExecutionId": parent[1]},
                "TaskScheduleId": parent[2],
            }
            if parent
            else None
        )
        started = h.execution_started(now, name, instance_id, execution_id, input_value, parent_info, version)
        self.store.deliver(db, instance_id, started, visible_at=now, execution_id=execution_id, order=-2)

    def _require(self, instance_id: str) -> InstanceRow:
        inst = self.store.get_instance(instance_id)
        if inst is None:
            raise NotFound(f"No instance with ID '{instance_id}' found.")
        return inst

    def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        inst = self._require(instance_id)
        if inst.is_terminal:
            raise Gone(f"Instance with ID {instance_id} is gone: either completed or failed")
        now = self.clock.timestamp()
        raised = h.event(h.EVENT_RAISED, now, Name=name, Input=json.dumps(data))
        with self.store.transaction() as db:
            self.store.deliver(db, instance_id, raised, visible_at=now)
        self.wake()

    def control(self, instance_id: str, kind: str, reason: str) -> None:
        """Queue ``terminate``/``suspend``/``resume`` for an active instance."""
        inst = self._require(instance_id)
        if inst.is_terminal:
            raise Gone(f"Instance with ID {instance_id} is gone: either completed or failed")
        now = self.clock.timestamp()
        with self.store.transaction() as db:
            self.store.enqueue(db, instance_id, kind, {"reason": reason}, visible_at=now)
        self.wake()

    def purge(self, instance_ids: list[str]) -> int:
        deleted = 0
        with self.store.transaction() as db:
            for instance_id in instance_ids:
                inst = self.store.get_instance(instance_id, db)
                if inst is not None and inst.is_terminal:
                    self.store.delete_instance(db, instance_id)
                    deleted += 1
        return deleted

    def signal_entity(self, name: str, key: str, operation: str, input_text: str | None) -> None:
        entity_id = entity_instance_id(name, key)
        now = self.clock.timestamp()
        request = {"id": uuid.uuid4().hex, "op": operation, "signal": True, "input": input_text}
        with self.store.transaction() as db:
            self.store.enqueue(db, entity_id, "entity", request, visible_at=now)
        self.wake()

    # --- dispatch -----------------------------------------------------------------------------
    async def _process(self, target: str) -> None:
        assert self.loop is not None
        try:
            if target.startswith("@"):
                await self.loop.run_in_executor(self.orchestrator_pool, self._entity_batch, target)
            else:
                await self.loop.run_in_executor(self.orchestrator_pool, self._orchestration_episode, target)
            if target in self.failing:
                self.store.clear_failures(target)
                self.failing.discard(target)
        except WorkerLost:
            # A worker process died (crash recovery): not the message's fault, so not counted.
            log.exception("devhost: processing %s lost its worker; it will be retried", target)
            await asyncio.sleep(0.5)
        except Exception as err:
            self._count_failure(target, err)
            await asyncio.sleep(0.5)
        finally:
            self.busy.discard(target)
            self.wake()

    def _count_failure(self, target: str, err: Exception) -> None:
        """Retry a failed target, or park its messages once it has failed too often."""
        failures = self.store.count_failure(target)
        if failures < MAX_PROCESSING_ATTEMPTS:
            self.failing.add(target)
            log.exception(
                "devhost: processing %s failed (attempt %d of %d); it will be retried",
                target,
                failures,
                MAX_PROCESSING_ATTEMPTS,
            )
            return
        self.failing.discard(target)
        error = f"{type(err).__name__}: {err}"
        parked = self.store.park_messages(target, self.clock.timestamp(), failures, error)
        log.error(
            "devhost: parked %d message(s) for instance %s after %d failed attempts (poison): %s",
            parked,
            target,
            failures,
            error,
            exc_info=err,
        )

    def _orchestration_episode(self, instance_id: str) -> None:
        now = self.clock.timestamp()
        with self.store.read() as db:
            inst = self.store.get_instance(instance_id, db)
            messages = self.store.messages_for(db, instance_id, now)
        if not messages:
            return
        if inst is None or inst.is_terminal:
            with self.store.transaction() as db:
                self.store.delete_messages(db, [m.id for m in messages])
            return
        stale = [m for m in messages if m.execution_id not in (None, inst.execution_id)]
        current = [m for m in messages if m not in stale]
        if current and versioning.violates_match_strategy(inst.version, self.config):
            self._version_mismatch(inst, current, [m.id for m in stale], now)
            return
        controls = [m for m in current if m.kind in ("terminate", "suspend", "resume")]
        events = [m for m in current if m.kind == "event"]
        consumed = [m.id for m in stale]
        extra_history: list[dict[str, Any]] = []
        for control in controls:
            consumed.append(control.id)
            reason = control.payload.get("reason", "")
            if control.kind == "terminate":
                self._finish_terminated(inst, reason, consumed, now)
                return
            if control.kind == "suspend" and inst.status != "Suspended":
                inst.status = "Suspended"
                extra_history.append(h.event(h.EXECUTION_SUSPENDED, now, Reason=reason))
            elif control.kind == "resume" and inst.status == "Suspended":
                inst.status = "Running"
                extra_history.append(h.event(h.EXECUTION_RESUMED, now, Reason=reason))
        if inst.status == "Suspended" or not events:
            with self.store.transaction() as db:
                self.store.append_history(db, instance_id, extra_history)
                inst.last_updated_time = now
                self.store.put_instance(db, inst)
                self.store.delete_messages(db, consumed)
            return
        spec = self.index.durable("orchestrationTrigger", inst.name)
        old_history = self.store.history(instance_id)
        episode = Episode(inst, [*old_history, *extra_history], now, self.schema)
        if spec is None:
            work = episode.fail(
                f"The function '{inst.name}' doesn't exist, is disabled, or is not an orchestrator function."
            )
        else:
            assert self.invoker is not None
            invoker = self.invoker
            work = episode.run(events, lambda body: invoker.call_sync(spec, body, label=f"InstanceId={instance_id}"))
        consumed += [m.id for m in events]
        self._commit_episode(inst, episode.state, [*extra_history, *work.new_history], work, consumed, now)

    def _version_mismatch(self, inst: InstanceRow, current: list[Message], stale: list[int], now: float) -> None:
        """DTFx checks the version before running anything, terminate included: Fail fails the
        instance with VersionMismatch, Reject abandons the work item to be retried later
        (durabletask: TaskOrchestrationDispatcher.OnProcessWorkItemAsync)."""
        config = self.config
        if config.version_failure_strategy == "Fail":
            episode = Episode(inst, self.store.history(inst.instance_id), now, self.schema)
            work = episode.fail_without_running([m for m in current if m.kind == "event"], versioning.MISMATCH_MESSAGE)
            consumed = stale + [m.id for m in current]
            self._commit_episode(inst, episode.state, work.new_history, work, consumed, now)
            log.error(
                "devhost: instance %s has version %r, which versionMatchStrategy %s does not allow with "
                "defaultVersion %r; versionFailureStrategy Fail failed it",
                inst.instance_id,
                inst.version,
                config.version_match_strategy,
                config.default_version,
            )
            return
        retry_at = now + versioning.REJECT_RETRY_SECONDS
        with self.store.transaction() as db:
            self.store.delete_messages(db, stale)
            self.store.postpone_messages(db, [m.id for m in current], retry_at)
        log.warning(
            "devhost: instance %s has version %r, which versionMatchStrategy %s does not allow with "
            "defaultVersion %r; its work is rejected and retried in %.0f s (a host with a matching "
            "defaultVersion will run it)",
            inst.instance_id,
            inst.version,
            config.version_match_strategy,
            config.default_version,
            versioning.REJECT_RETRY_SECONDS,
        )

    def _commit_episode(
        self,
        inst: InstanceRow,
        state: dict[str, Any],
        new_history: list[dict[str, Any]],
        work: Work,
        consumed: list[int],
        now: float,
    ) -> None:
        with self.store.transaction() as db:
            self.store.delete_messages(db, consumed)
            inst.state = state
            inst.last_updated_time = now
            inst.custom_status = json.dumps(work.custom_status) if work.custom_status is not None else None
            if work.continue_as_new is not None:
                self._continue_as_new(db, inst, work.continue_as_new, now)
                return
            self.store.append_history(db, inst.instance_id, new_history)
            inst.status = work.status
            if work.has_output:
                inst.output = json.dumps(work.output)
            for task_id, name, input_ in work.activities:
                self.store.add_activity(db, inst.instance_id, inst.execution_id, task_id, name, input_, now)
            for fire_at, fired in work.timers:
                self.store.deliver(db, inst.instance_id, fired, visible_at=fire_at, execution_id=inst.execution_id)
            for child in work.sub_orchestrations:
                self._start_child(db, inst, child, now)
            for entity_id, request in work.entity_messages:
                self.store.enqueue(db, entity_id, "entity", request, visible_at=now)
            self.store.put_instance(db, inst)
            if inst.is_terminal:
                self._notify_parent(db, inst, now, failure=work.failure)

    def _continue_as_new(self, db: Any, inst: InstanceRow, cont: dict[str, Any], now: float) -> None:
        self.store.reset_history(db, inst.instance_id)
        inst.execution_id = uuid.uuid4().hex
        inst.state = new_state()
        inst.status = "Running"
        inst.input = json.dumps(cont["input"])
        self.store.put_instance(db, inst)
        started = h.execution_started(
            now, inst.name, inst.instance_id, inst.execution_id, cont["input"], None, inst.version
        )
        self.store.deliver(db, inst.instance_id, started, visible_at=now, execution_id=inst.execution_id, order=-2)

    def _start_child(self, db: Any, parent: InstanceRow, child: dict[str, Any], now: float) -> None:
        existing = self.store.get_instance(child["instance_id"], db)
        if existing is not None and existing.status in ACTIVE:
            failed = h.event(
                h.SUB_ORCHESTRATION_FAILED,
                now,
                TaskScheduledId=child["task_id"],
                Reason=f"An Orchestration instance with the status {existing.status} already exists.",
                Details=None,
            )
            self.store.deliver(db, parent.instance_id, failed, visible_at=now, execution_id=parent.execution_id)
            return
        if existing is not None:
            self.store.delete_instance(db, child["instance_id"])
        spec = self.index.durable("orchestrationTrigger", child["name"])
        name = spec.durable_name if spec else child["name"]
        self._create(
            db,
            name,
            child["instance_id"],
            child["input"],
            (parent.instance_id, parent.execution_id, child["task_id"]),
            now,
            versioning.new_instance_version(child.get("version"), self.config),
        )

    def _notify_parent(self, db: Any, inst: InstanceRow, now: float, *, failure: str | None) -> None:
        if inst.parent_instance_id is None or inst.parent_task_id is None:
            return
        if inst.status == "Completed":
            ev = h.event(h.SUB_ORCHESTRATION_COMPLETED, now, TaskScheduledId=inst.parent_task_id, Result=inst.output)
        else:
            ev = h.event(
                h.SUB_ORCHESTRATION_FAILED,
                now,
                TaskScheduledId=inst.parent_task_id,
                Reason=failure or f"Sub-orchestration '{inst.instance_id}' was {inst.status.lower()}",
                Details=None,
            )
        self.store.deliver(db, inst.parent_instance_id, ev, visible_at=now, execution_id=inst.parent_execution_id)

    def _finish_terminated(self, inst: InstanceRow, reason: str, consumed: list[int], now: float) -> None:
        with self.store.transaction() as db:
            self.store.delete_messages(db, consumed)
            # DTFx completes a terminated instance with ExecutionCompleted (status Terminated, the
            # reason as result): TaskOrchestrationContext.HandleExecutionTerminatedEvent.
            terminated = [
                h.event(h.EXECUTION_TERMINATED, now, Input=reason),
                h.event(h.EXECUTION_COMPLETED, now, OrchestrationStatus="Terminated", Result=json.dumps(reason)),
            ]
            self.store.append_history(db, inst.instance_id, terminated)
            inst.status = "Terminated"
            inst.output = json.dumps(reason)
            inst.last_updated_time = now
            self.store.put_instance(db, inst)
            self._notify_parent(db, inst, now, failure=f"Sub-orchestration terminated: {reason}")

    # --- activities ---------------------------------------------------------------------------
    async def _run_activity(self, item: Any) -> None:
        assert self.invoker is not None
        try:
            spec = self.index.durable("activityTrigger", item.name)
            event: dict[str, Any]
            try:
                if spec is None:
                    raise LookupError(
                        f"The function '{item.name}' doesn't exist, is disabled, or is not an activity function."
                    )
                value = decode("activityTrigger", _json_datum(item.input))
                bindings: dict[str, Any] = {spec.trigger_param: value}
                client = spec.binding("durableClient")
                if client is not None and self.client_binding is not None:
                    bindings[client["name"]] = self.client_binding()
                result = await self.invoker.call(spec, bindings, label=f"InstanceId={item.instance_id}")
                output = encode("activityTrigger", result).value
                event = h.event(h.TASK_COMPLETED, self.clock.timestamp(), TaskScheduledId=item.task_id, Result=output)
            except Exception as err:
                message, details = failure_text(err)
                event = h.event(
                    h.TASK_FAILED,
                    self.clock.timestamp(),
                    TaskScheduledId=item.task_id,
                    Reason=f"Activity function '{item.name}' failed:  {message}",
                    Details=serialized_cause(message, details),
                )
            with self.store.transaction() as db:
                # Deleting the work item and queueing its result in one transaction: a crash before
                # this commit re-runs the activity (at-least-once, as in Azure), never loses it.
                if self.store.delete_activity(db, item.id):
                    self.store.deliver(
                        db,
                        item.instance_id,
                        event,
                        visible_at=self.clock.timestamp(),
                        execution_id=item.execution_id,
                    )
        finally:
            self.running_activities.discard(item.id)
            self.wake()

    # --- entities -----------------------------------------------------------------------------
    def _entity_batch(self, entity_id: str) -> None:
        now = self.clock.timestamp()
        with self.store.read() as db:
            messages = self.store.messages_for(db, entity_id, now)
            state = self.store.entity_state(entity_id, db)
        if not messages:
            return
        name, key = split_entity_id(entity_id)
        spec = self.index.durable("entityTrigger", name)
        results: list[dict[str, Any]]
        new_state: str | None = state
        if spec is None:
            missing = f"The function '{name}' doesn't exist, is disabled, or is not an entity function."
            results = [{"isError": True, "result": json.dumps(missing)} for _ in messages]
        else:
            batch = [
                {
                    "name": m.payload["op"],
                    "input": json.dumps(m.payload["input"]) if m.payload.get("input") is not None else "null",
                    "isSignal": m.payload.get("signal", False),
                    "id": m.payload["id"],
                }
                for m in messages
            ]
            body = json.dumps(
                {
                    "self": {"name": name, "key": key},
                    "exists": state is not None,
                    "state": state,
                    "batch": batch,
                }
            )
            assert self.invoker is not None
            try:
                response = json.loads(self.invoker.call_sync(spec, body, label=f"EntityId={entity_id}"))
                results = response["results"]
                new_state = response["entityState"] if response.get("entityExists") else None
            except WorkerLost:
                raise
            except Exception as err:
                message, _ = failure_text(err)
                results = [{"isError": True, "result": json.dumps(message)} for _ in messages]
        with self.store.transaction() as db:
            self.store.put_entity(db, entity_id, name, key, new_state, now)
            for request_message, result in zip(messages, results, strict=True):
                self._respond_to_caller(db, request_message, result, now)
            self.store.delete_messages(db, [m.id for m in messages])

    def _respond_to_caller(self, db: Any, message: Message, result: dict[str, Any], now: float) -> None:
        request = message.payload
        if request.get("signal") or not request.get("parent"):
            return
        response: dict[str, Any] = {"result": result.get("result")}
        if result.get("isError"):
            response["exceptionType"] = "Error"
        raised = h.event(h.EVENT_RAISED, now, Name=request["id"], Input=json.dumps(response))
        self.store.deliver(
            db,
            request["parent"],
            raised,
            visible_at=now,
            execution_id=request.get("parentExecution"),
        )


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # a thread with no running loop
        return False


def _json_datum(value: str | None) -> meta.Datum:
    return meta.Datum(type="json", value=value if value is not None else "null")
