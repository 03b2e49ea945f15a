"""A Durable blueprint (df.Blueprint) with its own starter, orchestrator and activity, registered
into the app by function_app.py."""

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


@bp.route(route="blueprint/start", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def blueprint_start(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new("blueprint_tour")
    return client.create_check_status_response(req, instance_id)


@bp.orchestration_trigger(context_name="context")
def blueprint_tour(context: df.DurableOrchestrationContext):
    visited = []
    for city in ("Oslo", "Lima", "Perth"):
        visited.append((yield context.call_activity("blueprint_welcome", city)))
    return visited


@bp.activity_trigger(input_name="city")
def blueprint_welcome(city: str) -> str:
    return f"Welcome to {city}!"
