"""Orchestration versioning as samples-v2/orchestration_versioning exercises it, written afresh:
an orchestrator that branches on context.version, waits for an event (a window to redeploy with a
new defaultVersion), then calls a sub-orchestrator with an explicit version and without one."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="start/{functionName}/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client) -> func.HttpResponse:
    version = req.params.get("version")
    name, instance_id = req.route_params["functionName"], req.route_params["instanceId"]
    if version:
        await client.start_new(name, instance_id, version=version)
    else:
        await client.start_new(name, instance_id)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def versioned_flow(context: df.DurableOrchestrationContext):
    if context.version == "1.0":
        greeting = yield context.call_activity("legacy_greeting")
    else:
        greeting = yield context.call_activity("current_greeting")
    context.set_custom_status("waiting for Proceed")
    yield context.wait_for_external_event("Proceed")
    context.set_custom_status("proceeding")
    pinned = yield context.call_sub_orchestrator("report_version", version="0.9")
    unpinned = yield context.call_sub_orchestrator("report_version")
    return {"version": context.version, "pinnedChild": pinned, "defaultChild": unpinned, "greeting": greeting}


@app.orchestration_trigger(context_name="context")
def report_version(context: df.DurableOrchestrationContext):
    return context.version


@app.orchestration_trigger(context_name="context")
def quick(context: df.DurableOrchestrationContext):
    return context.version


@app.activity_trigger(input_name="unused")
def legacy_greeting(unused: str) -> str:
    return "greeting from the 1.0 path"


@app.activity_trigger(input_name="unused")
def current_greeting(unused: str) -> str:
    return "greeting from the newer path"
