"""Event subscription filters: ``includedEventTypes``, ``subjectBeginsWith``, ``subjectEndsWith``.

As in Azure: an absent/empty ``includedEventTypes`` matches every type; subject prefix/suffix
matching is case-insensitive unless ``isSubjectCaseSensitive`` is true. For CloudEvents the event
type is ``type`` and the subject ``subject``.
"""

from __future__ import annotations

from typing import Any

from emulators.eventgrid.config import CLOUD_EVENT_SCHEMA, Filter


def event_type_of(event: dict[str, Any], schema: str) -> str:
    return str(event.get("type" if schema == CLOUD_EVENT_SCHEMA else "eventType") or "")


def subject_of(event: dict[str, Any]) -> str:
    return str(event.get("subject") or "")


def matches(flt: Filter, event: dict[str, Any], schema: str) -> bool:
    if flt.included_event_types:
        event_type = event_type_of(event, schema).lower()
        if event_type not in {t.lower() for t in flt.included_event_types}:
            return False
    subject = subject_of(event)
    begins, ends = flt.subject_begins_with, flt.subject_ends_with
    if not flt.is_subject_case_sensitive:
        subject, begins, ends = subject.lower(), begins.lower(), ends.lower()
    return subject.startswith(begins) and subject.endswith(ends)
