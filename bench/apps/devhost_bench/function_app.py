"""The app the devhost benchmark hosts: a 5-activity chain and a long sequential loop."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def chain5(context: df.DurableOrchestrationContext):
    value = 0
    for _ in range(5):
        value = yield context.call_activity("step", value)
    return value


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext):
    total = 0
    for i in range(context.get_input()):
        total += yield context.call_activity("step", i)
    return total


@app.activity_trigger(input_name="value")
def step(value: int) -> int:
    return value + 1
