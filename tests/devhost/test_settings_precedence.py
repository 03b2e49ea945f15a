"""local.settings.json against the environment, as Core Tools does it: a variable already set to a
non-empty value wins and the file's value is skipped; an empty one does not count. devhost says
so once at start, naming the overridden keys (never their values)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.devhost_harness import DevHostProcess

APP = """
import json
import os

import azure.functions as func

app = func.FunctionApp()


@app.route(route="settings", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    names = ("PRECEDENCE_FILE_ONLY", "PRECEDENCE_BOTH", "PRECEDENCE_EMPTY_ENV", "PRECEDENCE_SECRET")
    return func.HttpResponse(json.dumps({name: os.environ.get(name) for name in names}))
"""


@pytest.fixture
def host(tmp_path: Path) -> DevHostProcess:
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text(APP)
    (app / "host.json").write_text(json.dumps({"version": "2.0"}))
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "PRECEDENCE_FILE_ONLY": "from-file",
        "PRECEDENCE_BOTH": "from-file",
        "PRECEDENCE_EMPTY_ENV": "from-file",
        "PRECEDENCE_SECRET": "file-secret-value",
    }
    (app / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    env = {"PRECEDENCE_BOTH": "from-env", "PRECEDENCE_EMPTY_ENV": "", "PRECEDENCE_SECRET": "env-secret-value"}
    return DevHostProcess(app, tmp_path / "state" / "state.db", tmp_path / "marks", env=env)


def test_environment_beats_local_settings_and_devhost_names_the_overridden_keys(host: DevHostProcess) -> None:
    host.start()
    try:
        seen = host.call("GET", "/api/settings").json()
        log = host.log()
    finally:
        host.stop()
    assert seen == {
        "PRECEDENCE_FILE_ONLY": "from-file",
        "PRECEDENCE_BOTH": "from-env",
        "PRECEDENCE_EMPTY_ENV": "from-file",  # an empty variable is not a value (Core Tools: IsNullOrEmpty)
        "PRECEDENCE_SECRET": "env-secret-value",
    }
    warnings = [line for line in log.splitlines() if " WARNING " in line and "local.settings.json" in line]
    assert len(warnings) == 1, log
    [warning] = warnings
    assert warning.endswith(
        "the environment overrides 2 setting(s), its values win (as with Core Tools): "
        "PRECEDENCE_BOTH, PRECEDENCE_SECRET"
    ), warning
    for value in ("env-secret-value", "file-secret-value", "from-env"):
        assert value not in log


def test_no_warning_when_nothing_is_overridden(host: DevHostProcess) -> None:
    host.env = {}
    host.start()
    try:
        assert host.call("GET", "/api/settings").json()["PRECEDENCE_BOTH"] == "from-file"
        log = host.log()
    finally:
        host.stop()
    assert "overrides" not in log
