"""Index a Python v2-model app the way the Python worker does: import the script, find the
``FunctionApp``/``DFApp``, and read every function's bindings from ``get_functions()``."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

TRIGGER_TYPES = {
    "httpTrigger",
    "orchestrationTrigger",
    "activityTrigger",
    "entityTrigger",
    "timerTrigger",
    "eventGridTrigger",
}


class IndexingError(RuntimeError):
    """The app could not be indexed; the message reads like the worker's and names the function."""


@dataclass
class FunctionSpec:
    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    user_function: Callable[..., Any]
    is_async: bool
    params: list[str] = field(default_factory=list)

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def trigger_param(self) -> str:
        return str(self.trigger["name"])

    def binding(self, kind: str) -> dict[str, Any] | None:
        return next((b for b in self.bindings if b.get("type") == kind), None)

    @property
    def durable_name(self) -> str:
        """The name orchestrators use to call this function (trigger override or function name)."""
        for key in ("orchestration", "activity", "entityName"):
            if self.trigger.get(key):
                return str(self.trigger[key])
        return self.name


@dataclass
class AppIndex:
    functions: dict[str, FunctionSpec]

    def by_trigger(self, trigger_type: str) -> list[FunctionSpec]:
        return [f for f in self.functions.values() if f.trigger_type == trigger_type]

    def durable(self, trigger_type: str, name: str) -> FunctionSpec | None:
        """Look up an orchestrator/activity/entity by the name durable code uses (case-insensitive,
        as the Durable extension matches function names)."""
        for spec in self.by_trigger(trigger_type):
            if spec.durable_name.lower() == name.lower():
                return spec
        return None


def _find_app(module: Any) -> func.FunctionRegister:
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise IndexingError(
            f"Worker failed to index functions: no FunctionApp or DFApp instance found in "
            f"module '{module.__name__}'. Define one at module level, e.g. app = func.FunctionApp()."
        )
    if len(apps) > 1:
        raise IndexingError(
            f"Worker failed to index functions: module '{module.__name__}' defines "
            f"{len(apps)} FunctionApp instances; exactly one is allowed."
        )
    return apps[0]


_ROUTE_PARAM = re.compile(r"{([^}:?]+)")


def _check_function(spec: FunctionSpec) -> None:
    declared = {b["name"] for b in spec.bindings if b.get("direction") == "IN"}
    if spec.trigger_type == "httpTrigger":
        route = spec.trigger.get("route") or spec.name
        for param in _ROUTE_PARAM.findall(route):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", param):
                raise IndexingError(
                    f"Error indexing function '{spec.name}': route '{route}' has an invalid parameter name '{param}'."
                )
    if spec.trigger_type in {"orchestrationTrigger", "entityTrigger"}:
        return  # the Durable SDK wraps these; their handle takes the context positionally
    extra = [p for p in spec.params if p not in declared and p != "context"]
    if extra:
        raise IndexingError(
            f"Error indexing function '{spec.name}': the following parameters are declared in "
            f"Python but not in the function's bindings: {sorted(extra)}"
        )
    missing = [b for b in declared if b not in spec.params]
    if missing:
        raise IndexingError(
            f"Error indexing function '{spec.name}': the following bindings have no matching "
            f"parameter in the Python function: {sorted(missing)}"
        )


def index_app(module_name: str, app_dir: Path) -> AppIndex:
    """Import ``module_name`` from ``app_dir`` and index its functions."""
    app_dir = Path(app_dir).resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise IndexingError(
            f"Worker failed to index functions: importing '{module_name}' raised "
            f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}"
        ) from err
    app = _find_app(module)
    try:
        functions = app.get_functions()
    except Exception as err:  # the library validates bindings and raises with the function name
        raise IndexingError(f"Worker failed to index functions: {err}") from err
    index: dict[str, FunctionSpec] = {}
    for function in functions:
        name = function.get_function_name()
        if not name:
            raise IndexingError("Worker failed to index functions: a function has no name")
        if name.lower() in (n.lower() for n in index):
            raise IndexingError(f"Error indexing function '{name}': duplicate function name")
        bindings = json.loads(function.get_function_json())["bindings"]
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise IndexingError(
                f"Error indexing function '{name}': a function must have exactly one trigger, found {len(triggers)}"
            )
        if triggers[0]["type"] not in TRIGGER_TYPES:
            raise IndexingError(
                f"Error indexing function '{name}': trigger type '{triggers[0]['type']}' is not "
                f"supported by devhost (supported: {', '.join(sorted(TRIGGER_TYPES))})"
            )
        user_function = function.get_user_function()
        params = list(inspect.signature(user_function).parameters)
        spec = FunctionSpec(
            name=name,
            trigger=triggers[0],
            bindings=bindings,
            user_function=user_function,
            is_async=inspect.iscoroutinefunction(user_function),
            params=params,
        )
        _check_function(spec)
        if _disabled(name):
            continue
        index[name] = spec
    return AppIndex(index)


def _disabled(name: str) -> bool:
    """Azure's ``AzureWebJobs.<function>.Disabled`` app setting: the function never runs."""
    return os.environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1")
