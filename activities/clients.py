"""One Azure client per process, built from app settings. SDK imports are deferred to first use
so that indexing the app (cold start) stays cheap."""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

ARM_ENDPOINT_SETTING = "ARM_ENDPOINT"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
CREDENTIAL_SETTING = "BACKUPCHAIN_CREDENTIAL"  # "default" (managed identity / developer login) or "local"
LOCAL_TOKEN_SETTING = "BACKUPCHAIN_LOCAL_TOKEN"
TOPIC_SETTING = "DOWNSTREAM_TOPIC_ENDPOINT"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_lock = threading.Lock()
# The SDK logs every request and response header at INFO; keep app logs to what operators need.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.identity").setLevel(logging.WARNING)


class SettingsError(RuntimeError):
    """A required app setting is missing or unsafe; the message names it."""


class LocalTokenCredential:
    """A fixed bearer token for the local emulators. Refused unless every endpoint is loopback,
    so it can never send a made-up token to Azure."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)

    def close(self) -> None:
        return None


def arm_endpoint() -> str:
    return os.environ.get(ARM_ENDPOINT_SETTING) or DEFAULT_ARM_ENDPOINT


def _is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in _LOOPBACK


@lru_cache(maxsize=1)
def credential() -> Any:
    mode = os.environ.get(CREDENTIAL_SETTING, "default").lower()
    if mode == "local":
        endpoints = [arm_endpoint(), os.environ.get(TOPIC_SETTING, "")]
        if not all(_is_loopback(url) for url in endpoints if url):
            raise SettingsError(
                f"{CREDENTIAL_SETTING}=local is only allowed when {ARM_ENDPOINT_SETTING} and {TOPIC_SETTING} "
                "point at loopback emulators"
            )
        return LocalTokenCredential(os.environ.get(LOCAL_TOKEN_SETTING, "local-emulator-token"))
    if mode != "default":
        raise SettingsError(f"{CREDENTIAL_SETTING}={mode!r}: expected 'default' or 'local'")
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


_backup_clients: dict[str, Any] = {}
POOL_SIZE = 32  # above host.json's maxConcurrentActivityFunctions, so concurrent calls reuse TLS connections


def _pooled_transport() -> Any:
    import requests
    from azure.core.pipeline.transport import RequestsTransport

    session = requests.Session()
    session.mount("https://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE))
    return RequestsTransport(session=session, session_owner=False)


def backup_client(subscription_id: str) -> Any:
    """The Recovery Services backup client for a subscription (one per process and subscription)."""
    with _lock:
        client = _backup_clients.get(subscription_id)
        if client is None:
            from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

            endpoint = arm_endpoint()
            # Token audience: the ARM endpoint itself in any cloud; the local emulators accept Azure's.
            audience = DEFAULT_ARM_ENDPOINT if _is_loopback(endpoint) else endpoint.rstrip("/")
            client = RecoveryServicesBackupClient(
                credential(),
                subscription_id,
                base_url=endpoint,
                credential_scopes=[f"{audience}/.default"],
                transport=_pooled_transport(),
            )
            _backup_clients[subscription_id] = client
        return client


@lru_cache(maxsize=1)
def publisher() -> Any:
    endpoint = os.environ.get(TOPIC_SETTING)
    if not endpoint:
        raise SettingsError(f"{TOPIC_SETTING} is not set: the downstream Event Grid topic endpoint is required")
    from azure.eventgrid import EventGridPublisherClient

    return EventGridPublisherClient(endpoint, credential())


@lru_cache(maxsize=1)
def resource_graph_client() -> Any:
    """The Resource Graph client (tenant-wide: the subscription is each query's scope). Its own
    retries are off: a throttled query waits as Resource Graph's quota headers say
    (activities/membership.py), other failures are retried by the orchestrator."""
    from azure.mgmt.resourcegraph import ResourceGraphClient

    endpoint = arm_endpoint()
    audience = DEFAULT_ARM_ENDPOINT if _is_loopback(endpoint) else endpoint.rstrip("/")
    return ResourceGraphClient(
        credential(),
        base_url=endpoint,
        credential_scopes=[f"{audience}/.default"],
        transport=_pooled_transport(),
        retry_total=0,
    )
