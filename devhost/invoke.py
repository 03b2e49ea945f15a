"""Calling user functions as the Python worker does: decode trigger data with the
``azure.functions`` converters, pass bindings by parameter name, run sync functions on a thread
pool and async ones on the host's event loop, and enforce ``functionTimeout``."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import azure.functions as func
from azure.functions import meta

from devhost.indexing import FunctionSpec
from devhost.workers import EpisodeWorkers, context_for

log = logging.getLogger("devhost")


class FunctionTimeout(Exception):
    pass


class InvocationContext(func.Context):
    """The ``context`` parameter the worker passes to functions that declare one."""

    def __init__(self, spec: FunctionSpec):
        self._invocation_id = str(uuid.uuid4())
        self._name = spec.name

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return None

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


def _converter(binding_type: str) -> Any:
    # azure.functions.meta leaves the registry accessor unannotated.
    return meta.get_binding_registry().get(binding_type)  # type: ignore[no-untyped-call]


def decode(binding_type: str, datum: meta.Datum) -> Any:
    converter = _converter(binding_type)
    if converter is None:
        raise TypeError(f"no converter for binding type {binding_type!r}")
    return converter.decode(datum, trigger_metadata={})


def encode(binding_type: str, value: Any) -> meta.Datum:
    datum: meta.Datum = _converter(binding_type).encode(value, expected_type=None)
    return datum


def _timespan(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


class Invoker:
    """Runs functions with per-invocation logging (function, instance id, duration)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: ThreadPoolExecutor,
        timeout: timedelta | None,
        workers: EpisodeWorkers | None = None,
    ):
        self.loop = loop
        self.pool = pool
        self.timeout = timeout
        self.workers = workers

    def _args(self, spec: FunctionSpec, bindings: dict[str, Any]) -> dict[str, Any]:
        args = dict(bindings)
        if "context" in spec.params and "context" not in args:
            args["context"] = InvocationContext(spec)
        return args

    async def call(self, spec: FunctionSpec, bindings: dict[str, Any], *, label: str = "") -> Any:
        """Invoke ``spec`` with ``bindings`` (by parameter name) from the event loop."""
        args = self._args(spec, bindings)
        started = time.monotonic()
        outcome = "Succeeded"
        try:
            if spec.is_async:
                awaitable = spec.user_function(**args)
            else:
                awaitable = self.loop.run_in_executor(self.pool, functools.partial(spec.user_function, **args))
            limit = self.timeout.total_seconds() if self.timeout else None
            try:
                return await asyncio.wait_for(awaitable, limit)
            except asyncio.TimeoutError:
                assert self.timeout is not None
                raise FunctionTimeout(
                    f"Timeout value of {_timespan(self.timeout)} was exceeded by function: Functions.{spec.name}"
                ) from None
        except BaseException:
            outcome = "Failed"
            raise
        finally:
            log.info(
                "Executed 'Functions.%s' (%s%s, Duration=%dms)",
                spec.name,
                outcome,
                f", {label}" if label else "",
                (time.monotonic() - started) * 1000,
            )

    def call_sync(self, spec: FunctionSpec, body: str, *, label: str) -> str:
        """Run an orchestrator/entity episode (sync, from a dispatcher thread) on its context
        ``body``: in an app worker process when there are any, else here."""
        started = time.monotonic()
        outcome = "Succeeded"
        try:
            if self.workers is not None:
                return self.workers.run(spec.trigger_type, spec.durable_name, body)
            return str(spec.user_function(context_for(spec.trigger_type, body)))
        except BaseException:
            outcome = "Failed"
            raise
        finally:
            log.info(
                "Executed 'Functions.%s' (%s, %s, Duration=%dms)",
                spec.name,
                outcome,
                label,
                (time.monotonic() - started) * 1000,
            )


def failure_text(err: BaseException) -> tuple[str, str]:
    """(message, details) for a function that raised, in the worker's words."""
    message = f"{type(err).__name__}: {err}"
    details = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return message, details


def serialized_cause(message: str, details: str) -> str:
    """TaskFailed ``Details`` as the extension writes them: the failure serialized the way its
    error serializer writes a .NET exception, with the Python traceback as the inner exception."""
    return json.dumps(
        {
            "$type": "System.Exception, System.Private.CoreLib",
            "Message": f" {message}",
            "Data": {},
            "InnerException": {"$type": "System.Exception, System.Private.CoreLib", "Message": details},
            "HelpLink": None,
            "Source": None,
            "HResult": -2146233088,
            "StackTrace": None,
        }
    )
