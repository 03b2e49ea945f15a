"""Durable instance queries that read every page.

The Durable HTTP API answers an instance query a page at a time (100 instances unless ``top``
says otherwise) with an ``x-ms-continuation-token`` header for the next page; the Python SDK's
``get_status_by``/``get_status_all`` (azure-functions-durable 1.7.0) send one request and drop the
token, so on Azure they would see only the first page. ``list_instances`` follows the token."""

from __future__ import annotations

from datetime import datetime

import aiohttp
import azure.durable_functions as df
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.RpcManagementOptions import RpcManagementOptions

CONTINUATION = "x-ms-continuation-token"
# 1,000 pages of 100 instances: far above what a task hub of this app holds; reaching it means
# the host keeps answering tokens, and the query stops with an error instead of looping.
MAX_PAGES = 1000
# The backend's token is null on the last page (Azure/durabletask#372); the header then reads
# "null" (devhost), is empty or missing. Older extensions sent base64 "null" (extension #1174).
LAST_PAGE_TOKENS = ("null", "bnVsbA==")
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=240, sock_connect=10)  # the SDK's own timeouts


class InstanceQueryError(Exception):
    """The Durable host answered an instance query with something other than a page."""


async def list_instances(
    client: df.DurableOrchestrationClient,
    *,
    instance_id_prefix: str | None = None,
    runtime_status: list[df.OrchestrationRuntimeStatus] | None = None,
    created_time_from: datetime | None = None,
) -> list[DurableOrchestrationStatus]:
    """Every instance matching the filters, across all pages (in the order the backend lists them)."""
    # Same URL, and the same (keyless, host-local) authentication, as the SDK's get_status_by: the
    # query options rendered against the client binding's rpcBaseUrl
    # (DurableOrchestrationClient._orchestration_bindings.rpc_base_url in SDK 1.7.0).
    options = RpcManagementOptions(
        created_time_from=created_time_from, runtime_status=runtime_status, instance_id_prefix=instance_id_prefix
    )
    url = options.to_url(client._orchestration_bindings.rpc_base_url)
    invocation_id = client._function_invocation_id
    base_headers = {"X-Azure-Functions-InvocationId": invocation_id} if invocation_id else {}
    statuses: list[DurableOrchestrationStatus] = []
    token: str | None = None
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        for _ in range(MAX_PAGES):
            headers = {**base_headers, CONTINUATION: token} if token else base_headers
            async with session.get(url, headers=headers) as response:
                body = await response.json(content_type=None)
                if response.status != 200 or not isinstance(body, list):
                    raise InstanceQueryError(f"instance query {url} answered HTTP {response.status}: {str(body)[:300]}")
                statuses.extend(DurableOrchestrationStatus.from_json(item) for item in body)
                token = response.headers.get(CONTINUATION)
            if not token or token in LAST_PAGE_TOKENS:
                return statuses
    raise InstanceQueryError(f"instance query {url} still had more pages after {MAX_PAGES}; stopped")
