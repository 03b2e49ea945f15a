"""Indexing like the Python worker, host.json settings, and the replay schemas the SDK offers."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.procs import ServiceStartError
from tests.devhost.conftest import SAMPLE_APP
from tests.support.devhost_harness import DevHostProcess

HEADER = "import azure.functions as func\nimport azure.durable_functions as df\napp = df.DFApp()\n"


def _write_app(directory: Path, body: str, host_json: str = '{"version": "2.0"}') -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "function_app.py").write_text(HEADER + textwrap.dedent(body))
    (directory / "host.json").write_text(host_json)
    return directory


def _start_fails(tmp_path: Path, body: str, host_json: str = '{"version": "2.0"}') -> str:
    app_dir = _write_app(tmp_path / "app", body, host_json)
    process = DevHostProcess(app_dir, tmp_path / "state" / "state.db", tmp_path / "marks")
    with pytest.raises(ServiceStartError):
        process.start()
    return (tmp_path / "state" / "devhost.log").read_text()


def test_parameter_without_binding_fails_indexing_naming_the_function(tmp_path: Path) -> None:
    log = _start_fails(
        tmp_path,
        """
        @app.route(route="x")
        def handler(req: func.HttpRequest, extra: str) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
    )
    assert "Error indexing function 'handler'" in log and "extra" in log


def test_bad_ncrontab_fails_indexing_naming_the_function(tmp_path: Path) -> None:
    log = _start_fails(
        tmp_path,
        """
        @app.timer_trigger(schedule="every day", arg_name="timer")
        def nightly(timer: func.TimerRequest) -> None:
            pass
        """,
    )
    assert "Error indexing function 'nightly'" in log and "NCRONTAB" in log


def test_import_error_fails_with_the_workers_message(tmp_path: Path) -> None:
    log = _start_fails(tmp_path, "raise RuntimeError('config missing')\n")
    assert "Worker failed to index functions" in log and "config missing" in log


def test_bad_host_json_names_the_field(tmp_path: Path) -> None:
    body = """
    @app.route(route="x")
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")
    """
    log = _start_fails(tmp_path, body, '{"version": "2.0", "extensions": {"durableTask": {"hubName": "a b"}}}')
    assert "extensions.durableTask.hubName" in log
    log = _start_fails(tmp_path / "b", body, '{"version": "2.0", "functionTimeout": "soon"}')
    assert "functionTimeout" in log


@pytest.fixture
def prefixed_host(tmp_path: Path) -> Iterator[DevHostProcess]:
    app_dir = _write_app(
        tmp_path / "app",
        """
        @app.route(route="hello/{name}", auth_level=func.AuthLevel.ANONYMOUS)
        def hello(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("hi " + req.route_params["name"])

        @app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
        def admin_only(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("admin")
        """,
        '{"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}, "durableTask": {"hubName": "PrefixHub"}}}',
    )
    process = DevHostProcess(app_dir, tmp_path / "state" / "state.db", tmp_path / "marks").start()
    yield process
    process.stop()


def test_route_prefix_hub_name_and_admin_auth_level(prefixed_host: DevHostProcess) -> None:
    assert requests.get(prefixed_host.url + "/v1/hello/ann", timeout=10).text == "hi ann"
    assert requests.get(prefixed_host.url + "/api/hello/ann", timeout=10).status_code == 404
    assert prefixed_host.info["hub"] == "PrefixHub"
    assert prefixed_host.call("GET", "/v1/admin-only", key="function").status_code == 401
    assert prefixed_host.call("GET", "/v1/admin-only", key="master").text == "admin"


def test_no_auth_accepts_requests_without_keys(tmp_path: Path) -> None:
    process = DevHostProcess(SAMPLE_APP, tmp_path / "state" / "state.db", tmp_path / "marks", ["--no-auth"]).start()
    try:
        assert requests.post(process.url + "/api/echo", data=b"open", timeout=10).status_code == 201
        assert requests.get(process.url + "/runtime/webhooks/durabletask/instances", timeout=10).status_code == 200
    finally:
        process.stop()


def test_keys_are_generated_once_and_kept_in_the_state_dir(tmp_path: Path) -> None:
    process = DevHostProcess(SAMPLE_APP, tmp_path / "state" / "state.db", tmp_path / "marks").start()
    first = process.info["keys"]
    process.restart(kill=False)
    try:
        assert process.info["keys"] == first
        assert (tmp_path / "state" / "keys.json").stat().st_mode & 0o077 == 0
    finally:
        process.stop()


@pytest.fixture(params=[0, 1], ids=["schema-V1", "schema-V2"])
def older_schema_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DevHostProcess]:
    extra = ["--replay-schema", str(request.param)]
    process = DevHostProcess(SAMPLE_APP, tmp_path / "state" / "state.db", tmp_path / "marks", extra).start()
    yield process
    process.stop()


def test_older_replay_schemas_run_the_same_orchestrations(older_schema_host: DevHostProcess) -> None:
    host = older_schema_host
    host.start_orchestration("fan_out", "s-fan", 5)
    host.start_orchestration("wait_event", "s-race")
    host.start_orchestration("retrying", "s-retry", {"key": "s", "attempts": 2, "succeed_on": 2})
    host.start_orchestration("use_entity", "s-ent", "schema-key")
    assert host.wait_status("s-fan")["output"] == 15
    assert host.wait_status("s-ent")["output"]["current"] == 7
    host.wait_timers("s-race", 1)
    host.wait_timers("s-retry", 1)
    host.advance(3601)
    assert host.wait_status("s-race")["output"] == {"timeout": True}
    assert host.wait_status("s-retry")["output"] == "succeeded on attempt 2"
