"""triggers.instance_query.list_instances: the real DurableOrchestrationClient's query URL, paged
by x-ms-continuation-token against a loopback HTTP server that answers like the Durable host."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df
import pytest
from aiohttp import web

from triggers import instance_query
from triggers.instance_query import InstanceQueryError, list_instances

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _status(instance_id: str) -> dict[str, Any]:
    return {
        "name": "chain_run",
        "instanceId": instance_id,
        "runtimeStatus": "Running",
        "input": None,
        "customStatus": None,
        "output": None,
        "createdTime": "2027-01-04T03:00:00Z",
        "lastUpdatedTime": "2027-01-04T03:00:00Z",
    }


async def _serve_and_list(handler: Handler, **filters: Any) -> list[str]:
    app = web.Application()
    app.router.add_get("/durabletask/instances/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    binding = {
        "taskHubName": "hub",
        "creationUrls": {},
        "managementUrls": {},
        "rpcBaseUrl": f"http://127.0.0.1:{port}/durabletask/",
    }
    try:
        client = df.DurableOrchestrationClient(json.dumps(binding))
        return [str(s.instance_id) for s in await list_instances(client, **filters)]
    finally:
        await runner.cleanup()


def test_follows_the_continuation_token_through_every_page_with_the_sdk_query() -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c", "d"], "t2"), "t2": (["e"], "null")}
    seen: list[tuple[str | None, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        token = request.headers.get("x-ms-continuation-token")
        seen.append((token, dict(request.query)))
        ids, next_token = pages[token]
        return web.json_response([_status(i) for i in ids], headers={"x-ms-continuation-token": next_token})

    listed = asyncio.run(
        _serve_and_list(handler, instance_id_prefix="chain:x:", runtime_status=[df.OrchestrationRuntimeStatus.Running])
    )
    assert listed == ["a", "b", "c", "d", "e"]
    assert [token for token, _ in seen] == [None, "t1", "t2"]
    assert all(query == {"instanceIdPrefix": "chain:x:", "runtimeStatus": "Running"} for _, query in seen)


@pytest.mark.parametrize("last_token", [None, "", "bnVsbA=="])
def test_a_missing_empty_or_old_base64_null_token_ends_the_listing(last_token: str | None) -> None:
    async def handler(request: web.Request) -> web.Response:
        headers = {} if last_token is None else {"x-ms-continuation-token": last_token}
        return web.json_response([_status("only")], headers=headers)

    assert asyncio.run(_serve_and_list(handler)) == ["only"]


def test_a_host_that_never_stops_answering_tokens_ends_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instance_query, "MAX_PAGES", 3)
    calls: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        return web.json_response([_status(f"i{len(calls)}")], headers={"x-ms-continuation-token": "again"})

    with pytest.raises(InstanceQueryError, match="still had more pages after 3"):
        asyncio.run(_serve_and_list(handler))
    assert len(calls) == 3


def test_an_error_answer_is_raised_naming_the_status() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"Message": "hub unavailable"}, status=500)

    with pytest.raises(InstanceQueryError, match=r"HTTP 500: .*hub unavailable"):
        asyncio.run(_serve_and_list(handler))
