"""Text checks shared by the HTTP models, the upstream trigger and the tests."""

from __future__ import annotations


def is_unicode(text: str) -> bool:
    """Is ``text`` Unicode text? A lone surrogate (what a ``\\ud800`` escape in JSON decodes to)
    is not: no UTF-8 encoder, Event Grid's included, takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
