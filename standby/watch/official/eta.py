"""What a vendor said about when service comes back, picked out of its updates.

Status pages have no field for an estimated restoration time; vendors write it into the
update text ("we expect full recovery by 14:00 UTC", "next update in 30 minutes", "we do
not have an ETA yet"). The sentence that says so is what our own status page can show,
word for word: Standby never invents a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from standby.watch.official.model import OfficialUpdate

_MAX = 300  # characters of the sentence kept
_LOOK = 1000  # characters of a sentence searched (bounds the regular expression's work)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ETA = re.compile(
    r"\bETA\b"
    r"|\bestimated\s+(time|resolution|restoration|recovery|completion)\b"
    r"|\bexpect\w*\b.*\b(resolv|restor|recover|complet|mitigat|back to normal|fix)"
    r"|\b(resolved|restored|fixed|mitigated|completed|recovered)\s+(by|within|in the next)\b"
    r"|\bnext update\b"
    r"|\b(provide|post|share)\s+(an|another|a further|the next)\s+update\b",
    re.IGNORECASE,
)


def find_eta(updates: Iterable[OfficialUpdate]) -> str | None:
    """The first sentence about restoration or the next update, searching the updates
    newest first; ``None`` if no update says anything of the kind."""
    for update in updates:
        for sentence in _SENTENCE.split(update.body):
            if _ETA.search(sentence[:_LOOK]):
                text = " ".join(sentence.split())
                return text if len(text) <= _MAX else text[: _MAX - 1] + "…"
    return None
