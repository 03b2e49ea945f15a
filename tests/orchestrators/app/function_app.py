"""The fast tier's Functions app: the app's real orchestrator and entity blueprints, and, under
the app's activity names, scripted stand-ins that answer from the test's script
(tests/support/activity_script.py)."""

import os
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from entities.chain_control import bp as control_entity
from entities.delivery_outbox import bp as outbox_entities
from entities.job_watch import bp as watch_entity
from entities.protection_lease import bp as lease_entity
from orchestrators import protection
from orchestrators.chain_run import bp as chain_orchestrator
from orchestrators.delivery import bp as delivery_orchestrator
from orchestrators.gc import bp as gc_orchestrators
from orchestrators.job_poller import bp as poller_orchestrator
from orchestrators.scheduler import bp as scheduler_orchestrator
from orchestrators.vm_backup import bp as vm_orchestrator
from orchestrators.watch_job import bp as watch_orchestrator
from tests.support.activity_script import LEASE_WAITS_ENV, ActivityScript

# The lease wait loop's bound, cut for the tier (tests/orchestrators/README.md): 240 waits cost
# 480 replays of a growing history, over a minute on its own; the loop itself is the app's.
if LEASE_WAITS_ENV in os.environ:
    protection.MAX_WAITS = int(os.environ[LEASE_WAITS_ENV])

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (
    chain_orchestrator,
    vm_orchestrator,
    watch_orchestrator,
    gc_orchestrators,
    delivery_orchestrator,
    poller_orchestrator,
    scheduler_orchestrator,
    lease_entity,
    outbox_entities,
    watch_entity,
    control_entity,
):
    app.register_functions(blueprint)


FORWARD = {"forward": True}  # tell_parent's unscripted answer: do what the app's activity does


def _answer(activity: str, request: Any, default: Any = None) -> Any:
    return ActivityScript.from_env().answer(activity, request, default)


# The activities' names and JSON shapes are those of activities/backup.py, protection.py,
# events.py, job_poll.py, run_jobs.py and membership.py.
@app.activity_trigger(input_name="request")
def trigger_backup(request: dict[str, Any]) -> Any:
    return _answer("trigger_backup", request)


@app.activity_trigger(input_name="request")
def backup_operation(request: dict[str, Any]) -> Any:
    return _answer("backup_operation", request)


@app.activity_trigger(input_name="request")
def get_job(request: dict[str, Any]) -> Any:
    return _answer("get_job", request)


@app.activity_trigger(input_name="request")
def find_active_job(request: dict[str, Any]) -> Any:
    return _answer("find_active_job", request)


@app.activity_trigger(input_name="request")
def latest_recovery_point(request: dict[str, Any]) -> Any:
    return _answer("latest_recovery_point", request)


@app.activity_trigger(input_name="request")
def get_policy_schedule(request: dict[str, Any]) -> Any:
    return _answer("get_policy_schedule", request)


@app.activity_trigger(input_name="request")
def inspect_protection(request: dict[str, Any]) -> Any:
    return _answer("inspect_protection", request)


@app.activity_trigger(input_name="request")
def set_protection(request: dict[str, Any]) -> Any:
    return _answer("set_protection", request)


@app.activity_trigger(input_name="request")
def run_jobs(request: dict[str, Any]) -> Any:
    return _answer("run_jobs", request)


@app.activity_trigger(input_name="request")
def publish_events(request: dict[str, Any]) -> Any:
    """Records what it was asked to publish; unless scripted otherwise the topic accepts it all."""
    sent = len(request["events"])
    return _answer("publish_events", request, {"ok": True, "sent": sent, "queued": 0, "reasons": []})


@app.activity_trigger(input_name="request")
def send_event_batch(request: dict[str, Any]) -> Any:
    return _answer("send_event_batch", request)


@app.activity_trigger(input_name="request")
def report_undelivered(request: dict[str, Any]) -> Any:
    return _answer("report_undelivered", request, len(request["events"]))


@app.activity_trigger(input_name="request")
def poll_jobs(request: dict[str, Any]) -> Any:
    return _answer("poll_jobs", request)


@app.activity_trigger(input_name="notice")
@app.durable_client_input(client_name="client")
async def tell_parent(notice: dict[str, Any], client: df.DurableOrchestrationClient) -> Any:
    """Raises the notice into the parent as activities/notify.py does, unless the script says
    this notice fails (to reach the parent's fall back to the child's end)."""
    if _answer("tell_parent", notice, FORWARD) == FORWARD:
        await client.raise_event(notice["instanceId"], notice["event"], notice["data"])
    return {"ok": True}


@app.route(route="orchestrators/{name}/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], req.route_params["instance_id"], req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.activity_trigger(input_name="request")
def resolve_members(request: dict[str, Any]) -> Any:
    return _answer("resolve_members", request)
