"""The Azure Functions app: registers the blueprints; nothing else.

The chain configuration is validated here, at start-up, so a broken configuration fails
indexing with an error naming the bad field instead of failing later at run time."""

import azure.durable_functions as df
import azure.functions as func

from activities.backup import bp as backup_activities
from activities.events import bp as event_activities
from activities.job_poll import bp as poll_activity
from activities.membership import bp as membership_activity
from activities.notify import bp as notify_activity
from activities.protection import bp as protection_activities
from activities.run_jobs import bp as run_jobs_activity
from app_runtime import config
from entities.chain_control import bp as control_entity
from entities.delivery_outbox import bp as outbox_entities
from entities.job_watch import bp as watch_entity
from entities.protection_lease import bp as lease_entity
from orchestrators.chain_control import bp as control_orchestrators
from orchestrators.chain_run import bp as chain_orchestrator
from orchestrators.delivery import bp as delivery_orchestrator
from orchestrators.gc import bp as gc_orchestrators
from orchestrators.job_poller import bp as poller_orchestrator
from orchestrators.scheduler import bp as scheduler_orchestrator
from orchestrators.vm_backup import bp as vm_orchestrator
from orchestrators.watch_job import bp as watch_orchestrator
from telemetry import configure as configure_telemetry
from triggers.beacon import bp as beacon_trigger
from triggers.chains import bp as chain_triggers
from triggers.control import bp as control_triggers
from triggers.deliveries import bp as delivery_triggers
from triggers.gc import bp as gc_triggers
from triggers.http_api import bp as http_api
from triggers.pollers import bp as poller_timer
from triggers.retry import bp as retry_trigger
from triggers.schemas import bp as schema_route
from triggers.upstream import bp as upstream_trigger
from triggers.windows import bp as window_timer

config()
configure_telemetry()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (
    http_api,
    chain_triggers,
    control_triggers,
    retry_trigger,
    upstream_trigger,
    beacon_trigger,
    window_timer,
    poller_timer,
    gc_triggers,
    delivery_triggers,
    schema_route,
    chain_orchestrator,
    scheduler_orchestrator,
    vm_orchestrator,
    watch_orchestrator,
    poller_orchestrator,
    gc_orchestrators,
    delivery_orchestrator,
    control_orchestrators,
    lease_entity,
    watch_entity,
    outbox_entities,
    control_entity,
    backup_activities,
    event_activities,
    poll_activity,
    notify_activity,
    protection_activities,
    run_jobs_activity,
    membership_activity,
):
    app.register_functions(blueprint)
