"""The instance-id and entity-id rules the Durable extension enforces at its client API, with the
messages it answers (HTTP 400 ``{"Message": ...}``).

Source: azure-functions-durable-extension ``DurableClient.StartNewAsync`` / ``SignalEntityAsync``
(``IsInvalidCharacter``, ``MaxInstanceIdLength`` = 256) and ``EntityId``. The extension builds these
errors as ``new ArgumentException(nameof(x), "rule")`` (argument order swapped), so .NET renders
them as ``x (Parameter 'rule')``; devhost answers the same text."""

from __future__ import annotations

import unicodedata

MAX_INSTANCE_ID_LENGTH = 256
_FORBIDDEN = "/\\?#"


def _has_invalid_character(text: str) -> bool:
    # .NET char.IsControl is the Unicode category Cc.
    return any(c in _FORBIDDEN or unicodedata.category(c) == "Cc" for c in text)


def _utf16_length(text: str) -> int:
    # .NET string.Length counts UTF-16 code units, not code points.
    return len(text.encode("utf-16-le")) // 2


def orchestration_id_error(instance_id: str) -> str | None:
    """Why the extension refuses ``instance_id`` for a new orchestration, or None if it accepts it."""
    if instance_id.startswith("@"):
        return "instanceId (Parameter 'Orchestration instance ids must not start with @.')"
    if _has_invalid_character(instance_id):
        return (
            "instanceId (Parameter 'Orchestration instance ids must not contain /, \\, #, ?, or control characters.')"
        )
    if _utf16_length(instance_id) > MAX_INSTANCE_ID_LENGTH:
        return f"Instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters."
    return None


def entity_key_error(key: str) -> str | None:
    """Why the extension refuses to signal an entity with ``key``, or None if it accepts it."""
    if _has_invalid_character(key):
        return "entityKey (Parameter 'Entity keys must not contain /, \\, #, ?, or control characters.')"
    return None


def entity_instance_id(name: str, key: str) -> str:
    """The scheduler id of entity ``name``/``key`` (``@name@key``, the name lower-cased)."""
    return f"@{name.lower()}@{key}"


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """(name, key) of a scheduler id ``@name@key``; ValueError naming the id for anything else."""
    parts = entity_id.split("@", 2)
    if len(parts) != 3 or parts[0] or not parts[1]:
        raise ValueError(f"{entity_id!r} is not an entity id (expected '@name@key')")
    return parts[1], parts[2]
