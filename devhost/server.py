"""Assembles devhost: indexes the app, opens the task hub, serves HTTP triggers, the Durable
management API, the Event Grid webhook, admin routes and timers, and runs the Durable runtime."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.functions import meta

from devhost import eventgrid_trigger as eg
from devhost.http_triggers import Route, build_routes, error_response, to_aiohttp_response, to_func_request
from devhost.indexing import AppIndex, FunctionSpec, index_app
from devhost.invoke import decode
from devhost.keys import Keys
from devhost.mgmt_api import PUBLIC_BASE, RPC_BASE, ManagementApi
from devhost.runtime import Runtime
from devhost.settings import HostConfig, apply_settings, load_host_json, load_local_settings
from devhost.store import Store
from devhost.timers import TimerTriggers
from devhost.workers import EpisodeWorkers, worker_count
from localclock.clock import Clock
from localclock.clock_http import add_clock_routes
from localclock.serving import serve

log = logging.getLogger("devhost")


@dataclass
class Options:
    app_module: str = "function_app"
    app_dir: Path = Path(".")
    host: str = "127.0.0.1"
    port: int = 7071
    rpc_port: int = 0
    state: Path = Path(".devhost/state.db")
    settings: Path | None = None
    no_auth: bool = False
    replay_schema: int = 2


def _supplied_key(request: web.Request) -> str | None:
    return request.headers.get("x-functions-key") or request.query.get("code")


def _unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text="Unauthorized: a valid key is required (x-functions-key header or code query)")


class DevHost:
    def __init__(self, options: Options, clock: Clock):
        self.options = options
        self.clock = clock
        self.state_dir = options.state.parent
        self.keys = Keys.load_or_create(self.state_dir)
        overridden = apply_settings(load_local_settings(options.settings))
        if overridden:  # names only: values may be secrets
            log.warning(
                "%s: the environment overrides %d setting(s), its values win (as with Core Tools): %s",
                options.settings.name if options.settings else "local.settings.json",
                len(overridden),
                ", ".join(overridden),
            )
        self.config: HostConfig = load_host_json(options.app_dir)
        self.index: AppIndex = index_app(options.app_module, options.app_dir)
        self.routes: list[Route] = build_routes(self.index.by_trigger("httpTrigger"))
        self.store = Store(options.state)
        workers = worker_count()
        self.runtime = Runtime(
            self.index,
            self.store,
            clock,
            self.config,
            options.replay_schema,
            EpisodeWorkers(workers, options.app_module, options.app_dir) if workers else None,
        )
        self.timers = TimerTriggers(self.index.by_trigger("timerTrigger"), self.store, clock, self._invoke_timer)
        self.mgmt: ManagementApi | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    # --- auth ---------------------------------------------------------------------------------
    def _check_admin(self, request: web.Request) -> None:
        if not self.options.no_auth and not self.keys.allows_admin(_supplied_key(request)):
            raise _unauthorized()

    def _check_system(self, name: str) -> Any:
        def guard(request: web.Request) -> None:
            if not self.options.no_auth and not self.keys.allows_system(name, _supplied_key(request)):
                raise _unauthorized()

        return guard

    # --- HTTP triggers ------------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        prefix = self.config.route_prefix
        path = request.path.strip("/")
        if prefix:
            if not (path == prefix or path.startswith(prefix + "/")):
                raise web.HTTPNotFound()
            path = path[len(prefix) :].strip("/")
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.methods and request.method not in route.methods:
                allowed |= route.methods
                continue
            return await self._invoke_http(route, request, params)
        if allowed:
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
        raise web.HTTPNotFound()

    async def _invoke_http(self, route: Route, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        supplied = _supplied_key(request)
        if not self.options.no_auth:
            if route.auth_level == "FUNCTION" and not self.keys.allows_function(supplied):
                raise _unauthorized()
            if route.auth_level == "ADMIN" and not self.keys.allows_admin(supplied):
                raise _unauthorized()
        spec = route.spec
        try:
            result = await self._call(spec, await to_func_request(request, params))
        except Exception:
            log.exception("Executed 'Functions.%s' failed", spec.name)
            return error_response(500, f"Function '{spec.name}' failed; see the devhost log")
        return to_aiohttp_response(result)

    # --- Event Grid and timers ----------------------------------------------------------------
    async def _eventgrid(self, request: web.Request) -> web.StreamResponse:
        self._check_system("eventgrid_extension")(request)
        name = request.query.get("functionName", "")
        spec = self.index.functions.get(name)
        if spec is None or spec.trigger_type != "eventGridTrigger":
            return web.Response(status=404, text=f"No Event Grid trigger function named '{name}'")
        if request.method == "OPTIONS":
            return eg.handshake(request)
        events = eg.parse_delivery(await request.read())
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            answer = eg.validation_response(events)
            if answer is not None:
                return answer
        eg.check_events(events)
        failed = 0
        for event in events:
            try:
                await self._invoke_eventgrid(spec, json.dumps(event))
            except Exception:
                failed += 1
                log.exception("Event Grid trigger %s failed for event %s", spec.name, event.get("id"))
        if failed:
            return web.Response(status=500, text=f"{failed} of {len(events)} events failed")
        return web.Response(status=202)

    async def _call(self, spec: FunctionSpec, trigger_value: Any, label: str = "") -> Any:
        """Invoke a client-facing function with its trigger value and its input bindings (the
        durable client binding JSON points at this host's management API)."""
        bindings: dict[str, Any] = {spec.trigger_param: trigger_value}
        client = spec.binding("durableClient")
        if client is not None:
            assert self.mgmt is not None
            bindings[client["name"]] = self.mgmt.client_binding()
        assert self.runtime.invoker is not None
        return await self.runtime.invoker.call(spec, bindings, label=label)

    async def _invoke_eventgrid(self, spec: FunctionSpec, body: str) -> None:
        await self._call(spec, decode("eventGridTrigger", meta.Datum(type="json", value=body)))

    async def _invoke_timer(self, spec: FunctionSpec, body: str) -> None:
        await self._call(spec, decode("timerTrigger", meta.Datum(type="json", value=body)), label="Timer")

    async def _admin_invoke(self, request: web.Request) -> web.Response:
        """``POST /admin/functions/{name}`` runs a non-HTTP function by hand, as the host does."""
        self._check_admin(request)
        spec = self.index.functions.get(request.match_info["name"])
        if spec is None:
            return web.Response(status=404, text=f"No function named '{request.match_info['name']}'")
        try:
            body = json.loads(await request.read() or b"{}")
        except json.JSONDecodeError:
            return web.Response(status=400, text='body must be JSON like {"input": "..."}')
        text = body.get("input") if isinstance(body, dict) else None
        if spec.trigger_type == "timerTrigger":
            now = self.clock.now()
            job = self._invoke_timer(spec, TimerTriggers.request_json(False, None, now, now))
        elif spec.trigger_type == "eventGridTrigger":
            if not isinstance(text, str):
                return web.Response(status=400, text="'input' must be the event as a JSON string")
            job = self._invoke_eventgrid(spec, text)
        else:
            return web.Response(status=400, text=f"'{spec.name}' has a {spec.trigger_type}; invoke it its own way")
        self._tasks.append(asyncio.create_task(job))
        return web.Response(status=202)

    async def _host_status(self, request: web.Request) -> web.Response:
        """Host state plus the Durable backlog; ``idle`` means nothing is ready or running now
        (tests and demos use it to let work settle after moving a manual clock)."""
        ready, activities = self.store.backlog(self.clock.timestamp())
        busy = len(self.runtime.busy) + len(self.runtime.running_activities)
        return web.json_response(
            {
                "state": "Running",
                "functions": sorted(self.index.functions),
                "readyMessages": ready,
                "pendingActivities": activities,
                "inProgress": busy,
                "idle": ready == 0 and activities == 0 and busy == 0,
                # Messages that failed every processing attempt, taken out of the queue (poison).
                "parkedMessages": self.store.parked(),
            }
        )

    # --- start / stop -------------------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        # Origins are known only once the sockets are bound, so the management API learns them
        # after the sites start (its routes must be registered before).
        self.mgmt = ManagementApi(
            self.runtime,
            self.config.hub_name,
            "",
            "",
            None if self.options.no_auth else self.keys.system["durabletask_extension"],
        )
        self.runtime.client_binding = self.mgmt.client_binding
        rpc_app = web.Application(client_max_size=16 * 1024 * 1024)
        self.mgmt.add_routes(rpc_app, RPC_BASE, None)
        public = web.Application(client_max_size=110 * 1024 * 1024)
        self.mgmt.add_routes(public, PUBLIC_BASE, self._check_system("durabletask_extension"))
        public.router.add_route("POST", "/runtime/webhooks/eventgrid", self._eventgrid)
        public.router.add_route("OPTIONS", "/runtime/webhooks/eventgrid", self._eventgrid)
        public.router.add_post("/admin/functions/{name}", self._admin_invoke)
        public.router.add_get("/admin/host/status", self._host_status)
        add_clock_routes(public, self.clock, self._on_clock_advance, check_auth=self._check_admin)
        public.router.add_route("*", "/{tail:.*}", self._http)
        # The RPC endpoint (what out-of-proc SDK clients call) listens on loopback only, as in Azure.
        rpc_runner, rpc_port = await serve(rpc_app, "127.0.0.1", self.options.rpc_port)
        public_runner, port = await serve(public, self.options.host, self.options.port)
        self.mgmt.rpc_origin = f"http://127.0.0.1:{rpc_port}"
        self.mgmt.public_origin = f"http://{self.options.host}:{port}"
        self._runners = [public_runner, rpc_runner]
        self._tasks.append(asyncio.create_task(self.runtime.run()))
        self._tasks.append(asyncio.create_task(self.timers.run()))
        return {
            "url": self.mgmt.public_origin,
            "rpc": f"http://127.0.0.1:{rpc_port}{RPC_BASE}/",
            "state": str(self.options.state),
            "hub": self.config.hub_name,
            "keys": {
                "function": self.keys.function_default,
                "master": self.keys.master,
                "durabletask_extension": self.keys.system["durabletask_extension"],
                "eventgrid_extension": self.keys.system["eventgrid_extension"],
            },
            "functions": {name: spec.trigger_type for name, spec in sorted(self.index.functions.items())},
            "clock": self.clock.mode,
        }

    async def _on_clock_advance(self) -> None:
        self.runtime.wake()
        self.timers.wake.set()

    async def stop(self) -> None:
        self.timers.stop()
        self.runtime.stop()
        for task in self._tasks:
            task.cancel()
        for runner in self._runners:
            await runner.cleanup()
        self.store.close()
