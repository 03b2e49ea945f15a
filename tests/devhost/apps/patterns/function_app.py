"""Durable patterns of azure-functions-durable-python samples-v2, written afresh: function
chaining, a registered blueprint, custom-class arguments, a sub-orchestration and fan-out/fan-in
(over the local file system: devhost serves no blob binding)."""

import json
import os
import shutil

import azure.durable_functions as df
import azure.functions as func
from greetings_blueprint import bp
from parcel import Parcel

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["functionName"], None, json.loads(body) if body else None)
    return client.create_check_status_response(req, instance_id)


# --- function chaining -----------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def greet_cities(context: df.DurableOrchestrationContext):
    greetings = []
    for city in ("Tokyo", "Seattle", "London"):
        greetings.append((yield context.call_activity("greet", city)))
    return greetings


@app.activity_trigger(input_name="city")
def greet(city: str) -> str:
    return f"Hello {city}!"


# --- custom classes as arguments (to_json/from_json) -----------------------------------------
@app.route(route="parcels/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def parcels_start(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new("weigh_parcel", client_input=Parcel("books", 5))
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def weigh_parcel(context: df.DurableOrchestrationContext):
    parcel = context.get_input()
    heavier = yield context.call_activity("add_wrapping", parcel)
    return {
        "inputType": type(parcel).__name__,
        "inputGrams": parcel.grams,
        "activityResultType": type(heavier).__name__,
        "activityResultGrams": heavier.grams,
    }


@app.activity_trigger(input_name="parcel")
def add_wrapping(parcel: Parcel) -> Parcel:
    if not isinstance(parcel, Parcel):
        raise TypeError(f"expected a Parcel, got {type(parcel).__name__}")
    return parcel.heavier(2)


# --- sub-orchestration -----------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def visit(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("visit_one", context.get_input()))


@app.orchestration_trigger(context_name="context")
def visit_one(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("greet", context.get_input()))


# --- fan-out/fan-in: back a directory up file by file, sum the bytes -------------------------
@app.orchestration_trigger(context_name="context")
def back_up_directory(context: df.DurableOrchestrationContext):
    job = context.get_input()
    if not job or not job.get("source"):
        raise ValueError("a source directory is required as input")
    files = yield context.call_activity("list_files", job["source"])
    copies = [context.call_activity("copy_file", {"file": f, **job}) for f in files]
    sizes = yield context.task_all(copies)
    return {"files": len(files), "bytes": sum(sizes)}


@app.activity_trigger(input_name="root")
def list_files(root: str) -> list:
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names)


@app.activity_trigger(input_name="copy")
def copy_file(copy: dict) -> int:
    target = os.path.join(copy["target"], os.path.relpath(copy["file"], copy["source"]))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(copy["file"], target)
    return os.path.getsize(target)
