"""Writing parsed exports into the chat store, and the report of what it did.

Conversations go in batches, one transaction each (``ChatStore.add_threads``).  Their
ids come from the export's, so an import that is run again adds nothing, and a newer
export of the same conversations adds only what is new.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from standby.chat.store import ChatStore
from standby.importers.tree import Parsed, Skipped, to_thread

BATCH = 200  # conversations per transaction


@dataclass
class ImportReport:
    source: str
    imported: int = 0  # conversations new to the store
    updated: int = 0  # there already; messages added (a newer export)
    unchanged: int = 0  # there already, complete: skipped
    messages: int = 0  # messages added
    skipped: list[Skipped] = field(default_factory=list)  # of what was written, what was not

    def reasons(self) -> Counter[str]:
        """How many items were skipped for each reason."""
        return Counter(skip.reason for skip in self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "messages": self.messages,
            "skipped": [
                {"conversation": s.conversation, "item": s.item, "reason": s.reason}
                for s in self.skipped
            ],
        }


async def ingest(
    store: ChatStore, parsed: Parsed, source: str, owner: str | None, *, batch: int = BATCH
) -> ImportReport:
    """Write ``parsed`` for ``owner``; the nodes left out are reported for the
    conversations written (not for those already complete in the store)."""
    report = ImportReport(source, skipped=list(parsed.skipped))
    exported = []
    for each in parsed.conversations:
        if any(node.skipped is None for node in each.nodes):
            exported.append(each)
        else:
            report.skipped.append(Skipped(each.title or each.id, "", "no message to import"))
    for start in range(0, len(exported), batch):
        chunk = exported[start : start + batch]
        stored = await store.add_threads([to_thread(each, owner) for each in chunk])
        for each, outcome in zip(chunk, stored, strict=True):
            report.messages += outcome.messages
            if outcome.created:
                report.imported += 1
            elif outcome.messages:
                report.updated += 1
            else:
                report.unchanged += 1
                continue
            report.skipped += [
                Skipped(each.title or each.id, node.id, node.skipped)
                for node in each.nodes
                if node.skipped is not None
            ]
    return report
