"""host.json and local.settings.json, read the way the Functions host reads them."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


class HostConfigError(ValueError):
    """host.json or local.settings.json is malformed; the message names the file and field."""


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET TimeSpan string (``[d.]hh:mm:ss[.fff]``) as host.json and timer triggers use."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a TimeSpan like '00:05:00' or '1.02:00:00'")
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds) + (float(f"0.{fraction}") if fraction else 0.0),
    )


@dataclass(frozen=True)
class HostConfig:
    hub_name: str = "TestHubName"
    max_concurrent_activities: int = 10
    max_concurrent_orchestrators: int = 10
    function_timeout: timedelta | None = timedelta(minutes=5)
    route_prefix: str = "api"
    raw: dict[str, Any] | None = None
    # Orchestration versioning (extension DurableTaskOptions defaults: no version, CurrentOrOlder, Reject).
    default_version: str | None = None
    version_match_strategy: str = "CurrentOrOlder"
    version_failure_strategy: str = "Reject"


def _field(data: dict[str, Any], path: str, kind: type, default: Any, source: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    if kind is int and isinstance(node, bool):
        raise HostConfigError(f"{source}: '{path}' must be an integer, got {node!r}")
    if not isinstance(node, kind):
        raise HostConfigError(f"{source}: '{path}' must be {kind.__name__}, got {node!r}")
    return node


def load_host_json(app_dir: Path) -> HostConfig:
    path = Path(app_dir) / "host.json"
    if not path.exists():
        return HostConfig()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise HostConfigError(f"{path.name}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise HostConfigError(f"{path.name}: the top level must be a JSON object")
    version = data.get("version")
    if version != "2.0":
        raise HostConfigError(f"{path.name}: 'version' must be \"2.0\", got {version!r}")
    src = path.name
    hub = _field(data, "extensions.durableTask.hubName", str, "TestHubName", src)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,49}", hub):
        raise HostConfigError(
            f"{src}: 'extensions.durableTask.hubName' {hub!r} must start with a letter, hold only "
            "letters and digits, and be 3-50 characters long"
        )
    max_act = _field(data, "extensions.durableTask.maxConcurrentActivityFunctions", int, 10, src)
    max_orch = _field(data, "extensions.durableTask.maxConcurrentOrchestratorFunctions", int, 10, src)
    for name, value in (
        ("maxConcurrentActivityFunctions", max_act),
        ("maxConcurrentOrchestratorFunctions", max_orch),
    ):
        if value < 1:
            raise HostConfigError(f"{src}: 'extensions.durableTask.{name}' must be >= 1, got {value}")
    timeout_text = _field(data, "functionTimeout", str, None, src)
    timeout: timedelta | None = timedelta(minutes=5)
    if timeout_text is not None:
        if timeout_text.strip() == "-1":
            timeout = None
        else:
            try:
                timeout = parse_timespan(timeout_text)
            except ValueError as err:
                raise HostConfigError(f"{src}: 'functionTimeout': {err}") from None
    prefix = _field(data, "extensions.http.routePrefix", str, "api", src).strip("/")
    default_version, match, failure = _versioning(data, src)
    return HostConfig(
        hub,
        max_act,
        max_orch,
        timeout,
        prefix,
        data,
        default_version=default_version,
        version_match_strategy=match,
        version_failure_strategy=failure,
    )


def _enum_field(data: dict[str, Any], key: str, choices: tuple[str, ...], default: str, source: str) -> str:
    """An enum option as the .NET configuration binder reads it: by name, case-insensitively."""
    value = _field(data, f"extensions.durableTask.{key}", str, default, source)
    for choice in choices:
        if choice.lower() == value.strip().lower():
            return choice
    raise HostConfigError(
        f"{source}: 'extensions.durableTask.{key}' must be one of {', '.join(choices)}; got {value!r}"
    )


def _versioning(data: dict[str, Any], source: str) -> tuple[str | None, str, str]:
    extensions = data.get("extensions")
    durable = extensions.get("durableTask") if isinstance(extensions, dict) else None
    # "defaultVersion": null is the same as leaving it out (docs: "Orchestration versioning").
    default_version = durable.get("defaultVersion") if isinstance(durable, dict) else None
    if default_version is not None and not isinstance(default_version, str):
        raise HostConfigError(
            f"{source}: 'extensions.durableTask.defaultVersion' must be a string or null, got {default_version!r}"
        )
    match = _enum_field(data, "versionMatchStrategy", ("None", "Strict", "CurrentOrOlder"), "CurrentOrOlder", source)
    failure = _enum_field(data, "versionFailureStrategy", ("Reject", "Fail"), "Reject", source)
    return default_version, match, failure


def load_local_settings(path: Path | None) -> dict[str, str]:
    """The ``Values`` of local.settings.json (missing file → empty); every value must be a string
    (numbers and booleans are converted, as the Core Tools do)."""
    if path is None or not Path(path).exists():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise HostConfigError(f"{Path(path).name}: not valid JSON ({err})") from None
    values = data.get("Values", {}) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise HostConfigError(f"{Path(path).name}: 'Values' must be an object of app settings")
    settings: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, (dict, list)) or value is None:
            raise HostConfigError(f"{Path(path).name}: 'Values.{key}' must be a string, got {value!r}")
        settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return settings


def apply_settings(values: dict[str, str]) -> list[str]:
    """Expose app settings as environment variables (the worker sees them that way) and return the
    keys the environment overrides. Core Tools' rule: a variable already set to a non-empty value
    wins and the local setting is skipped; an empty one is replaced (azure-functions-core-tools,
    StartHostAction.UpdateEnvironmentVariables: "Skipping '{key}' from local settings as it's
    already defined in current environment variables")."""
    overridden = []
    for key, value in values.items():
        if os.environ.get(key):
            overridden.append(key)
        else:
            os.environ[key] = value
    return overridden
