"""infra/ and the app agree: function names and trigger types the infra refers to, host.json's hub
name and storage provider, and the app settings infra provides vs those the app reads.

The app is indexed with the project's own indexer (devhost.indexing.index_app), as the Python worker
would. The checker itself is also run against a small synthetic app so it is exercised even where
function_app.py is absent.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from devhost.indexing import AppIndex, index_app

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
APP_SOURCES = [
    "function_app.py",
    "app_runtime.py",
    "activities",
    "backup_chain",
    "triggers",
    "orchestrators",
    "entities",
]

# Function name -> trigger type, as the infra and docs/deploy.md rely on them.
REQUIRED_FUNCTIONS = {
    "upstream_event": "eventGridTrigger",  # target of the upstream Event Grid subscription
    "chain_windows": "timerTrigger",
    "gc_weekly": "timerTrigger",
}
# The one anonymous route: the event schemas every published event names (triggers/schemas.py).
ANONYMOUS_ROUTES = {"schemas/events/{event_type}/{version}"}
# Settings the platform reads, not the app.
PLATFORM_SETTINGS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    "TASKHUB_NAME",
}


def contract_problems(index: AppIndex, host: dict[str, Any], infra_function: str, hub_name: str) -> list[str]:
    problems = []
    required = dict(REQUIRED_FUNCTIONS, **{infra_function: "eventGridTrigger"})
    for name, trigger in required.items():
        spec = index.functions.get(name)
        if spec is None:
            problems.append(f"function {name!r} referenced by infra/docs is not in the app")
        elif spec.trigger_type != trigger:
            problems.append(f"function {name!r} is a {spec.trigger_type}, infra expects {trigger}")
    http = index.by_trigger("httpTrigger")
    routes = {str(f.trigger.get("route") or f.name) for f in http}
    if not any(r.startswith("chains/") for r in routes) or "gc" not in routes:
        problems.append(f"HTTP routes documented in docs/deploy.md are missing (have {sorted(routes)})")
    for spec in http:
        if str(spec.trigger.get("route")) in ANONYMOUS_ROUTES:
            continue
        if str(spec.trigger.get("authLevel", "")).upper() != "FUNCTION":
            problems.append(f"HTTP function {spec.name!r} is not function-level auth")
    durable = host.get("extensions", {}).get("durableTask", {})
    if durable.get("hubName") != hub_name:
        problems.append(f"host.json hubName {durable.get('hubName')!r} != infra's {hub_name!r}")
    provider = durable.get("storageProvider", {})
    if provider.get("type") == "azureManaged":
        if provider.get("connectionStringName") != "DURABLE_TASK_SCHEDULER_CONNECTION_STRING":
            problems.append("azureManaged storageProvider must read DURABLE_TASK_SCHEDULER_CONNECTION_STRING")
    elif provider.get("type") not in (None, "AzureStorage", "azure_storage"):
        problems.append(f"host.json storageProvider {provider.get('type')!r} is not provisioned by infra")
    if host.get("extensions", {}).get("http", {}).get("routePrefix", "api") != "api":
        problems.append("docs/deploy.md documents /api/... routes; host.json changes the route prefix")
    return problems


def _infra_function_name(bicep: dict[str, Any]) -> str:
    return str(bicep["modules/upstream-subscription.bicep"]["parameters"]["functionName"]["default"])


def _hub_name(bicep: dict[str, Any]) -> str:
    return str(bicep["main.bicep"]["variables"]["durableHubName"]["value"])


def _infra_settings() -> set[str]:
    parsed: dict[str, Any] = dict(BicepParser().parse(file_path=INFRA / "modules" / "functionapp.bicep"))
    variables = parsed["variables"]
    return {str(entry["name"]) for var in ("baseSettings", "dtsSettings") for entry in variables[var]["value"]}


def test_infra_refers_to_the_documented_names(bicep: dict) -> None:
    assert _infra_function_name(bicep) == "upstream_event"
    assert _hub_name(bicep) == "BackupChainHub"
    settings = _infra_settings()
    assert {"BACKUPCHAIN_CONFIG", "ARM_ENDPOINT", "DOWNSTREAM_TOPIC_ENDPOINT", "APP_RESOURCE_ID"} <= settings
    # the configuration is a file in the package, never the JSON in one variable (Linux: 128 KiB at most)
    assert "BACKUPCHAIN_CONFIG_JSON" not in settings
    assert "AzureWebJobsStorage__accountName" in settings
    # identity-only: no key, secret or connection string with a key in app settings
    text = (INFRA / "modules" / "functionapp.bicep").read_text()
    assert "listKeys" not in text and "AccountKey" not in text and "SharedAccessKey" not in text
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings  # rejected on Flex Consumption (runtime is in functionAppConfig)


def test_checker_on_a_synthetic_app(tmp_path: Path) -> None:
    (tmp_path / "infra_contract_fake_app.py").write_text(
        textwrap.dedent(
            """
            import azure.durable_functions as df
            import azure.functions as func

            app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

            @app.event_grid_trigger(arg_name="event")
            def upstream_event(event: func.EventGridEvent) -> None: ...

            @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
            def chain_windows(timer: func.TimerRequest) -> None: ...

            @app.route(route="chains/{chain}/runs", methods=["POST"])
            def start(req: func.HttpRequest) -> func.HttpResponse: ...

            @app.route(route="gc", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
            def gc_status(req: func.HttpRequest) -> func.HttpResponse: ...
            """
        )
    )
    index = index_app("infra_contract_fake_app", tmp_path)
    host = {"extensions": {"durableTask": {"hubName": "OtherHub", "storageProvider": {"type": "azureManaged"}}}}
    problems = contract_problems(index, host, "upstream_event", "BackupChainHub")
    assert any("'gc_weekly'" in p for p in problems)
    assert any("'gc_status' is not function-level" in p for p in problems)
    assert any("hubName" in p for p in problems)
    assert any("DURABLE_TASK_SCHEDULER_CONNECTION_STRING" in p for p in problems)
    assert not any("upstream_event" in p or "chain_windows" in p for p in problems)


@pytest.fixture(scope="module")
def app_index() -> Iterator[AppIndex]:
    if not (REPO_ROOT / "function_app.py").is_file():
        pytest.skip("function_app.py is not in the repository yet")
    # Import the app exactly as deployed: BACKUPCHAIN_CONFIG names the file main.parameters.json
    # ships (chainConfigFile, relative to the app root), so that file is validated by the app's loader.
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    before = set(sys.modules)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKUPCHAIN_CONFIG", params["chainConfigFile"]["value"])
        mp.delenv("BACKUPCHAIN_CONFIG_JSON", raising=False)
        try:
            yield index_app("function_app", REPO_ROOT)
        finally:
            # leave no app module imported under this config for other tests
            for name in set(sys.modules) - before:
                del sys.modules[name]


def test_app_matches_infra(app_index: AppIndex, bicep: dict) -> None:
    host = json.loads((REPO_ROOT / "host.json").read_text())
    problems = contract_problems(app_index, host, _infra_function_name(bicep), _hub_name(bicep))
    assert not problems, "\n".join(problems)


def test_app_reads_the_settings_infra_provides(app_index: AppIndex) -> None:
    sources: list[str] = []
    for entry in APP_SOURCES:
        path = REPO_ROOT / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
        sources.extend(f.read_text() for f in files)
    code = "\n".join(sources)
    app_settings = {s for s in _infra_settings() - PLATFORM_SETTINGS if not s.startswith("AzureWebJobsStorage")}
    unread = {s for s in app_settings if f'"{s}"' not in code and f"'{s}'" not in code}
    assert not unread, f"infra sets app settings the app never reads: {sorted(unread)}"
