"""Time zones as Azure Backup policies name them: Windows zone ids ("W. Europe Standard Time"),
mapped to IANA through CLDR's windowsZones table (as tzlocal ships it), or IANA names."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz


class UnknownTimeZone(ValueError):
    """Neither a Windows zone id CLDR maps nor an IANA zone name."""

    def __init__(self, name: str):
        super().__init__(f"unknown time zone {name!r}: neither a Windows zone id (CLDR windowsZones) nor an IANA name")
        self.name = name


def zone(name: str) -> ZoneInfo:
    """The zone a policy's ``timeZone`` (or a config's IANA name) means; raises UnknownTimeZone."""
    try:
        return ZoneInfo(win_tz.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(name) from None


def known(name: str) -> bool:
    try:
        zone(name)
    except UnknownTimeZone:
        return False
    return True
