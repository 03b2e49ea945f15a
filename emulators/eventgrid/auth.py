"""Publisher authentication for a topic: ``aeg-sas-key``, SAS token or Microsoft Entra bearer token.

- Access key: header ``aeg-sas-key`` (or query ``aeg-sas-key``) equal to one of the topic's keys.
- SAS token: header ``aeg-sas-token`` or ``Authorization: SharedAccessSignature <token>``, token
  ``r={url-encoded resource}&e={url-encoded expiry}&s={url-encoded base64 HMAC-SHA256}`` where the
  HMAC (key = base64-decoded access key) is over ``r=...&e=...`` exactly as sent. The resource must
  be a prefix of the publish URL. This is what ``azure.eventgrid.generate_sas`` produces (its
  resource is ``<endpoint>?apiVersion=2018-01-01`` and its expiry ``str(datetime)``).
- Bearer: ``Authorization: Bearer <token>``; the emulator has no Entra ID, so any non-empty token
  is accepted (if it is a JWT, its ``aud`` must be Event Grid's).
- ``disableLocalAuth`` on a topic rejects keys and SAS tokens, as Azure does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import unquote, unquote_plus

from emulators.eventgrid.config import Topic
from emulators.eventgrid.errors import UNAUTHORIZED, PublishError

EVENTGRID_AUDIENCES = ("https://eventgrid.azure.net", "https://eventgrid.azure.net/")
MISSING_AUTH = "Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key."


def _unauthorized(resource: str, reason: str) -> PublishError:
    return PublishError(
        401,
        f"The request authorization key is not authorized for {resource.upper()}. This is due to the reason: {reason}",
        UNAUTHORIZED,
    )


def _parse_expiry(raw: str) -> datetime | None:
    text = unquote_plus(raw).strip()
    candidates = [text, text.replace("Z", "+00:00")]
    for candidate in candidates:
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    for fmt in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S"):  # .NET en-US DateTime.ToString()
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    try:
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    except ValueError:
        return None


def _sign(key: str, message: str) -> bytes:
    return base64.b64encode(hmac.new(base64.b64decode(key), message.encode(), hashlib.sha256).digest())


def verify_sas_token(token: str, topic: Topic, publish_url: str, now: datetime, resource: str) -> None:
    parts = dict(p.split("=", 1) for p in token.split("&") if "=" in p)
    if not {"r", "e", "s"} <= parts.keys():
        raise _unauthorized(resource, "The SAS token must contain r=, e= and s= parts.")
    expiry = _parse_expiry(parts["e"])
    if expiry is None:
        raise _unauthorized(resource, "The SAS token expiry could not be parsed.")
    if expiry <= now:
        raise _unauthorized(resource, "The SAS token has expired.")
    signed_resource = unquote(parts["r"]).split("?", 1)[0].rstrip("/").lower()
    if not publish_url.split("?", 1)[0].rstrip("/").lower().startswith(signed_resource):
        raise _unauthorized(resource, "The SAS token resource does not match the topic endpoint.")
    unsigned = token.rsplit("&s=", 1)[0]
    try:
        given = unquote(parts["s"]).encode()
        if any(hmac.compare_digest(_sign(k, unsigned), given) for k in topic.access_keys()):
            return
    except (binascii.Error, ValueError):
        pass
    raise _unauthorized(resource, "The SAS token signature is invalid.")


def _jwt_audience(token: str) -> object:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload.get("aud") if isinstance(payload, dict) else None


def authenticate(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    topic: Topic,
    publish_url: str,
    now: datetime,
    resource: str,
) -> str:
    """Return the method used (``key``/``sas``/``bearer``) or raise a 401 :class:`PublishError`."""
    authorization = headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        bearer = authorization[7:].strip()
        audience = _jwt_audience(bearer)
        if not bearer or (audience is not None and audience not in EVENTGRID_AUDIENCES):
            raise _unauthorized(resource, "The bearer token is not valid for Event Grid.")
        return "bearer"
    key = headers.get("aeg-sas-key") or query.get("aeg-sas-key")
    token = headers.get("aeg-sas-token")
    if token is None and authorization.startswith("SharedAccessSignature "):
        token = authorization[len("SharedAccessSignature ") :].strip()
    if key is None and token is None:
        raise PublishError(401, MISSING_AUTH, UNAUTHORIZED)
    if topic.disable_local_auth:
        raise _unauthorized(resource, "Local authentication (access keys and SAS) is disabled for this topic.")
    if key is not None:
        if any(hmac.compare_digest(key.encode(), k.encode()) for k in topic.access_keys()):
            return "key"
        raise _unauthorized(resource, "The access key does not match any of the topic's keys.")
    assert token is not None
    verify_sas_token(token, topic, publish_url, now, resource)
    return "sas"
