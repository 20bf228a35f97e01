"""Operator tools over the journal: export, backup, retention, tail, and their CLI."""
