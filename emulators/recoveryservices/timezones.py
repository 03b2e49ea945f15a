"""Windows time zone ids (as Azure Backup policies carry them) -> zoneinfo, through CLDR's
windowsZones table as tzlocal ships it; IANA names are accepted too."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz


def zone(name: str) -> ZoneInfo:
    """Raises KeyError naming the zone when it is neither a mapped Windows id nor an IANA name."""
    try:
        return ZoneInfo(win_tz.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise KeyError(name) from None
