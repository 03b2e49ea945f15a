"""The emulator's config file: topics and their event subscriptions, validated with field names.

Field names and ranges follow the Event Grid resource model (``Microsoft.EventGrid/topics`` and
``eventSubscriptions``): ``inputSchema`` (EventGridSchema | CloudEventSchemaV1_0), webhook
``endpointUrl``, ``maxEventsPerBatch`` 1-5000, ``preferredBatchSizeInKilobytes`` 1-1024,
``retryPolicy.maxDeliveryAttempts`` 1-30 (default 30), ``retryPolicy.eventTimeToLiveInMinutes``
1-1440 (default 1440), ``filter.includedEventTypes`` / ``subjectBeginsWith`` /
``subjectEndsWith`` / ``isSubjectCaseSensitive``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Schema = Literal["EventGridSchema", "CloudEventSchemaV1_0"]
EVENT_GRID_SCHEMA: Schema = "EventGridSchema"
CLOUD_EVENT_SCHEMA: Schema = "CloudEventSchemaV1_0"
DEFAULT_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"


class ConfigError(ValueError):
    """The config file is missing, not JSON, or has an invalid field (the message names it)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Topic(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9-]{3,50}$")
    input_schema: Schema = Field(default=EVENT_GRID_SCHEMA, alias="inputSchema")
    key: str | None = Field(default=None, description="base64 access key; generated when absent")
    key2: str | None = None
    disable_local_auth: bool = Field(default=False, alias="disableLocalAuth")
    resource_group: str = Field(default="local", alias="resourceGroup")
    subscription_id: str = Field(default=DEFAULT_SUBSCRIPTION_ID, alias="subscriptionId")

    @field_validator("key", "key2")
    @classmethod
    def _base64_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be a base64 string (the SDK's generate_sas base64-decodes it)") from None
        return value

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.EventGrid/topics/{self.name}"
        )

    def access_keys(self) -> list[str]:
        return [k for k in (self.key, self.key2) if k]


class Filter(_Model):
    included_event_types: list[str] | None = Field(default=None, alias="includedEventTypes")
    subject_begins_with: str = Field(default="", alias="subjectBeginsWith")
    subject_ends_with: str = Field(default="", alias="subjectEndsWith")
    is_subject_case_sensitive: bool = Field(default=False, alias="isSubjectCaseSensitive")


class RetryPolicy(_Model):
    max_delivery_attempts: int = Field(default=30, ge=1, le=30, alias="maxDeliveryAttempts")
    event_time_to_live_in_minutes: int = Field(default=1440, ge=1, le=1440, alias="eventTimeToLiveInMinutes")


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Subscription(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9-]{3,64}$")
    topic: str
    endpoint_url: str = Field(alias="endpointUrl")
    filter: Filter = Field(default_factory=Filter)
    delivery_schema: Schema | None = Field(default=None, alias="deliverySchema")
    max_events_per_batch: int = Field(default=1, ge=1, le=5000, alias="maxEventsPerBatch")
    preferred_batch_size_in_kilobytes: int = Field(default=64, ge=1, le=1024, alias="preferredBatchSizeInKilobytes")
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy, alias="retryPolicy")
    dead_letter: str | None = Field(
        default=None,
        alias="deadLetter",
        description="JSONL file for dead-lettered events (relative paths are under the state dir); "
        "absent = events are dropped, as Azure does without a dead-letter destination",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if not _is_loopback_host(parts.hostname):
            raise ValueError("must point at a loopback address (127.0.0.1, ::1 or localhost)")
        return value


class EmulatorConfig(_Model):
    topics: list[Topic] = Field(min_length=1)
    subscriptions: list[Subscription] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> EmulatorConfig:
        names = [t.name.lower() for t in self.topics]
        if len(set(names)) != len(names):
            raise ValueError("topics: topic names must be unique (case-insensitive)")
        by_name = {t.name.lower(): t for t in self.topics}
        seen: set[tuple[str, str]] = set()
        for index, sub in enumerate(self.subscriptions):
            topic = by_name.get(sub.topic.lower())
            if topic is None:
                raise ValueError(f"subscriptions.{index}.topic: no topic named {sub.topic!r}")
            key = (topic.name.lower(), sub.name.lower())
            if key in seen:
                raise ValueError(f"subscriptions.{index}.name: duplicate subscription {sub.name!r}")
            seen.add(key)
            if sub.delivery_schema is None:
                sub.delivery_schema = topic.input_schema
            if sub.delivery_schema != topic.input_schema:
                raise ValueError(
                    f"subscriptions.{index}.deliverySchema: the emulator delivers in the topic's input "
                    f"schema ({topic.input_schema}); schema conversion is not emulated"
                )
        return self

    def topic(self, name: str) -> Topic | None:
        for topic in self.topics:
            if topic.name.lower() == name.lower():
                return topic
        return None

    def subscriptions_for(self, topic: str) -> list[Subscription]:
        return [s for s in self.subscriptions if s.topic.lower() == topic.lower()]


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        lines.append(f"{where}: {item['msg']}")
    return "invalid config: " + "; ".join(lines)


def parse_config(raw: object) -> EmulatorConfig:
    try:
        config = EmulatorConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None
    for topic in config.topics:
        if topic.key is None:
            topic.key = base64.b64encode(secrets.token_bytes(32)).decode()
    return config


def load_config(path: Path) -> EmulatorConfig:
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not JSON: {err}") from None
    return parse_config(raw)
