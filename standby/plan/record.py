"""The base of every plan record: frozen, and strict about unknown keys (a typo in a plan
is an error that names the key, never a silently ignored setting)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
