"""Vendor JSON ↔ the canonical conversation (``standby.canonical.chat``)."""
