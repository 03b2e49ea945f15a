"""The small OData ``$filter`` dialect Recovery Services accepts: ``key eq 'value'`` clauses joined by
``and`` (e.g. ListJobsWithAllSupportedFilters.json:
``startTime eq '2016-01-01 00:00:00 AM' and ... and status eq 'InProgress'``)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from emulators.recoveryservices.errors import ArmError

_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_TIME_FORMATS = ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def parse_filter(raw: str | None) -> dict[str, str]:
    """``{lower-cased key: value}``; 400 on anything outside the dialect."""
    if not raw or not raw.strip():
        return {}
    out: dict[str, str] = {}
    for clause in _AND.split(raw.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise ArmError(400, "BMSUserErrorInvalidFilter", f"The filter clause '{clause}' is invalid.")
        out[match.group(1).lower()] = match.group(2)
    return out


def parse_time(value: str) -> float:
    """Filter times: Azure CLI/PowerShell send ``'YYYY-MM-DD hh:mm:ss AM'`` (UTC); ISO also accepted."""
    text = value.strip().replace("Z", "")
    text = re.sub(r"\.\d+", "", text)
    text = re.sub(r"[+-]\d\d:\d\d$", "", text)
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise ArmError(400, "BMSUserErrorInvalidFilter", f"The time '{value}' in the filter is not valid.")
