"""A sample Durable Functions app exercising every devhost feature the conformance tests check."""

import json
import logging
import os
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
MARKS = os.environ.get("SAMPLE_MARKS_DIR", ".")


def decoded(value: object) -> object:
    """Event data sent by the Python client reaches orchestrators as JSON text (as in Azure)."""
    return json.loads(value) if isinstance(value, str) else value


def _mark(name: str, value: object) -> None:
    """Append a line to a marks file so tests can see side effects (and count re-runs)."""
    with open(os.path.join(MARKS, f"{name}.jsonl"), "a") as handle:
        handle.write(json.dumps(value) + "\n")


# --- HTTP -------------------------------------------------------------------------------------
@app.route(route="orchestrators/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instance_id"), payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def typed_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"id": int(req.route_params["id"]), "q": req.params.get("q")}), mimetype="application/json"
    )


@app.route(route="items/{name:alpha}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def alpha_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"alpha:{req.route_params['name']}")


@app.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=201, headers={"X-Method": req.method})


@app.route(route="clientops/{op}/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_ops(req: func.HttpRequest, client) -> func.HttpResponse:
    """Drives the real DurableOrchestrationClient against devhost's management API."""
    op, instance_id = req.route_params["op"], req.route_params["instance_id"]
    body = json.loads(req.get_body() or b"null")
    result: object = None
    if op == "raise":
        await client.raise_event(instance_id, body["name"], body.get("data"))
    elif op == "status":
        status = await client.get_status(instance_id, show_history=True, show_history_output=True)
        if status:
            result = {**status.to_json(), "historyEvents": getattr(status, "historyEvents", None)}
    elif op == "terminate":
        await client.terminate(instance_id, body or "by test")
    elif op == "suspend":
        await client.suspend(instance_id, "pause")
    elif op == "resume":
        await client.resume(instance_id, "go on")
    elif op == "purge":
        result = (await client.purge_instance_history(instance_id)).instances_deleted
    elif op == "query":
        statuses = [df.OrchestrationRuntimeStatus(s) for s in body.get("statuses", [])] or None
        found = await client.get_status_by(runtime_status=statuses, instance_id_prefix=body.get("prefix"))
        result = sorted(s.instance_id for s in found)
    elif op == "signal":
        await client.signal_entity(df.EntityId("counter", instance_id), body["op"], body.get("input"))
    elif op == "entity":
        state = await client.read_entity_state(df.EntityId("counter", instance_id))
        result = {"exists": state.entity_exists, "state": state.entity_state}
    elif op == "start":
        result = await client.start_new(body["name"], instance_id, body.get("input"))
    elif op == "links":
        result = client.create_http_management_payload(instance_id)
    return func.HttpResponse(json.dumps(result), mimetype="application/json")


# --- orchestrators ------------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    value = context.get_input() or {"n": 0}
    results = []
    for step in range(int(value.get("steps", 3))):
        context.set_custom_status({"phase": "step", "step": step})
        results.append((yield context.call_activity("add_one", step)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input()
    tasks = [context.call_activity("add_one", i) for i in range(n)]
    results = yield context.task_all(tasks)
    return sum(results)


@app.orchestration_trigger(context_name="context")
def wait_event(context: df.DurableOrchestrationContext):
    deadline = context.current_utc_datetime + timedelta(hours=1)
    event = context.wait_for_external_event("go")
    timer = context.create_timer(deadline)
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        return {"event": decoded(event.result)}
    return {"timeout": True}


@app.orchestration_trigger(context_name="context")
def slow_then_add(context: df.DurableOrchestrationContext):
    slept = yield context.call_activity("slow", context.get_input())
    added = yield context.call_activity("add_one", 100)
    return [slept, added]


@app.orchestration_trigger(context_name="context")
def raw_event(context: df.DurableOrchestrationContext):
    return (yield context.wait_for_external_event("go"))


@app.orchestration_trigger(context_name="context")
def two_events(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("first")
    second = yield context.wait_for_external_event("second")
    return [decoded(first), decoded(second)]


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    minutes = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=minutes))
    result = yield context.call_activity("add_one", minutes)
    return result


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=spec["attempts"])
    return (yield context.call_activity_with_retry("flaky", options, spec))


@app.orchestration_trigger(context_name="context")
def big_status(context: df.DurableOrchestrationContext):
    """Sets a small custom status, then ``{"blob": text * count}`` after an activity."""
    spec = context.get_input()
    context.set_custom_status({"phase": "small"})
    yield context.call_activity("add_one", 0)
    context.set_custom_status({"blob": spec["text"] * int(spec["count"])})
    yield context.call_activity("add_one", 1)
    return "done"


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("explode", "boom")
    except Exception as err:
        context.set_custom_status({"caught": str(err)[:200]})
        raise ValueError("orchestrator gave up") from err


@app.orchestration_trigger(context_name="context")
def parent_of_named_child(context: df.DurableOrchestrationContext):
    """Starts a sub-orchestration under the id its input names."""
    return (yield context.call_sub_orchestrator("chain", {"steps": 1}, context.get_input()))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    a = yield context.call_sub_orchestrator("chain", {"steps": 2}, f"{context.instance_id}-child")
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    try:
        yield context.call_sub_orchestrator_with_retry("failing", options, None)
        b = "no error"
    except Exception as err:
        b = "sub failed: " + ("orchestrator gave up" if "orchestrator gave up" in str(err) else str(err)[:100])
    return {"child": a, "failing": b}


@app.orchestration_trigger(context_name="context")
def gated_loop(context: df.DurableOrchestrationContext):
    """Each execution waits for ``go``, then takes one ``item`` and continues as new (twice)."""
    state: dict = context.get_input() or {"round": 0, "seen": []}
    context.set_custom_status({"round": state["round"]})
    yield context.wait_for_external_event("go")
    item = yield context.wait_for_external_event("item")
    state["round"] += 1
    state["seen"].append(decoded(item))
    if state["round"] >= 2:
        return state
    context.continue_as_new(state)


@app.orchestration_trigger(context_name="context")
def use_entity(context: df.DurableOrchestrationContext):
    entity = df.EntityId("counter", context.get_input())
    context.signal_entity(entity, "add", 5)
    value = yield context.call_entity(entity, "add", 2)
    current = yield context.call_entity(entity, "get")
    try:
        yield context.call_entity(entity, "fail")
        failure = None
    except Exception as err:
        failure = str(err)
    return {"after_add": value, "current": current, "failure": failure}


@app.orchestration_trigger(context_name="context")
def entity_loop(context: df.DurableOrchestrationContext):
    """Calls an entity in every execution, then continues as new (like an eternal poller)."""
    round_ = context.get_input() or 0
    value = yield context.call_entity(df.EntityId("counter", f"{context.instance_id}-key"), "add", 1)
    if round_ >= 2:
        return {"round": round_, "value": value}
    context.continue_as_new(round_ + 1)


@app.orchestration_trigger(context_name="context")
def entity_order(context: df.DurableOrchestrationContext):
    """Signals then calls one entity in every episode (as the job poller and backups do): the
    entity must see this sender's operations in the order they were sent."""
    spec = context.get_input()
    entity = df.EntityId("journal", spec["key"])
    for i in range(int(spec["rounds"])):
        context.signal_entity(entity, "append", f"{spec['name']}-s{i}")
        yield context.call_activity("add_one", i)
        context.signal_entity(entity, "append", f"{spec['name']}-t{i}")
        yield context.call_entity(entity, "append", f"{spec['name']}-c{i}")
    return (yield context.call_entity(entity, "get"))


@app.orchestration_trigger(context_name="context")
def whoami(context: df.DurableOrchestrationContext):
    """Which process ran the final episode (devhost's own, or an app worker process)."""
    yield context.call_activity("add_one", 0)
    return {"pid": os.getpid(), "workers": os.environ.get("FUNCTIONS_WORKER_PROCESS_COUNT")}


@app.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext):
    name = "add_one" if not os.path.exists(os.path.join(MARKS, "switch")) else "explode"
    yield context.call_activity(name, 1)
    yield context.wait_for_external_event("continue")
    return "done"


# --- activities ---------------------------------------------------------------------------------
@app.activity_trigger(input_name="value")
def add_one(value: int) -> int:
    _mark("add_one", value)
    return value + 1


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    path = os.path.join(MARKS, f"flaky-{spec['key']}.jsonl")
    attempt = 1
    if os.path.exists(path):
        with open(path) as handle:
            attempt += sum(1 for _ in handle)
    _mark(f"flaky-{spec['key']}", attempt)
    if attempt < spec["succeed_on"]:
        raise RuntimeError(f"attempt {attempt} failed")
    return f"succeeded on attempt {attempt}"


@app.activity_trigger(input_name="message")
def explode(message: str) -> None:
    raise ValueError(message)


@app.activity_trigger(input_name="seconds")
async def slow(seconds: float) -> str:
    import asyncio

    _mark("slow-start", seconds)
    await asyncio.sleep(seconds)
    _mark("slow-end", seconds)
    return "slept"


# --- entity -------------------------------------------------------------------------------------
@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext):
    current = context.get_state(lambda: 0)
    op = context.operation_name
    if op == "add":
        current += context.get_input()
        context.set_state(current)
        context.set_result(current)
    elif op == "get":
        context.set_result(current)
    elif op == "reset":
        context.set_state(0)
    elif op == "fail":
        raise ValueError("entity refused")


@app.entity_trigger(context_name="context")
def journal(context: df.DurableEntityContext):
    entries = context.get_state(lambda: [])
    if context.operation_name == "append":
        entries.append(context.get_input())
        context.set_state(entries)
    context.set_result(entries)


# --- timer and Event Grid -----------------------------------------------------------------------
@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=False)
def hourly(timer: func.TimerRequest) -> None:
    _mark("hourly", {"past_due": timer.past_due})


@app.timer_trigger(schedule="%SAMPLE_INTERVAL%", arg_name="timer")
def interval(timer: func.TimerRequest) -> None:
    _mark("interval", {"past_due": timer.past_due})


@app.event_grid_trigger(arg_name="event")
@app.durable_client_input(client_name="client")
async def on_event(event: func.EventGridEvent, client) -> None:
    if isinstance(event, func.EventGridEvent):
        record = {
            "schema": "eventgrid",
            "id": event.id,
            "type": event.event_type,
            "subject": event.subject,
            "data": event.get_json(),
        }
    else:
        record = {
            "schema": "cloudevents",
            "id": event.id,
            "type": event.type,
            "subject": event.subject,
            "data": event.get_json(),
        }
    _mark("events", record)
    logging.info("event %s", record["id"])
    if record["type"] == "Sample.Start":
        await client.start_new("chain", f"eg-{record['id']}", {"steps": 1})
