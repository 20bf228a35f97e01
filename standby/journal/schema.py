"""The journal's tables, one schema for SQLite and PostgreSQL (SQLAlchemy Core).

Portable types only: JSON is stored as text (written by orjson, read back with it), times
are unix seconds in double precision, flags are booleans.  Strings have no length limit
so that no model name or callback URL can make a batch fail on PostgreSQL.

Production databases get these tables only through the alembic migration
(``standby.journal.migrate``); tests check that the migration yields exactly this
metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("rid", sa.String, primary_key=True),
    # which write-ahead log (one per replica) recorded the request: recovery after a
    # crash only touches the rows of its own log
    sa.Column("wal_id", sa.String, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    # the name of the client key the request came with (NULL on an open gateway): a
    # client sees only its own stored completions and responses
    sa.Column("client", sa.String),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("route", sa.String, nullable=False),
    sa.Column("model_asked", sa.String, nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("store", sa.Boolean, nullable=False),
    # accepted | completed | failed | interrupted | deferred | client_gone
    sa.Column("state", sa.String, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("completion_id", sa.String),
    sa.Column("provider", sa.String),
    sa.Column("model", sa.String),
    sa.Column("finished_at", sa.Double),
    sa.Column("request_json", sa.Text),  # NULL when the plan redacts bodies
    sa.Column("request_hash", sa.String),
    sa.Column("request_size", sa.Integer),
    sa.Column("response_json", sa.Text),
    sa.Column("content_sent", sa.Text),  # stream text delivered so far
    sa.Column("usage_json", sa.Text),
    sa.Column("metadata_json", sa.Text),
    sa.Column("attempts_json", sa.Text),
    sa.Column("defer_until", sa.Double),
    sa.Column("callback", sa.Text),
    sa.Column("deferred_tries", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_try_at", sa.Double),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    # time-range scans (admin view, retention) and the stored-completions listing, which
    # filters on state and pages by (received_at, rid)
    sa.Index("ix_requests_received_at", "received_at"),
    sa.Index("ix_requests_completion_id", "completion_id"),
    sa.Index("ix_requests_state_received_at", "state", "received_at"),
    sa.Index("ix_requests_client_received_at", "client", "received_at"),
)

journal_cursor = sa.Table(
    "journal_cursor",
    metadata,
    # how far each write-ahead log has been applied; written in the same transaction as
    # the rows it covers, so a replay never applies an event twice
    sa.Column("wal_id", sa.String, primary_key=True),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Standby's own incidents (``standby.incidents``): one row each, and its timeline
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("component", sa.String, nullable=False),  # target:p/m, route:name, or a label
    sa.Column("title", sa.Text, nullable=False),
    # investigating | identified | monitoring | resolved
    sa.Column("status", sa.String, nullable=False),
    sa.Column("severity", sa.String, nullable=False),  # major | minor
    sa.Column("source", sa.String, nullable=False),  # detector | manual
    sa.Column("opened_at", sa.Double, nullable=False),
    sa.Column("first_failure_at", sa.Double),
    sa.Column("acknowledged_at", sa.Double),
    sa.Column("resolved_at", sa.Double),
    sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("official_json", sa.Text),  # the provider's own incident, when it declared one
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_incidents_status_opened_at", "status", "opened_at"),
    sa.Index("ix_incidents_component_status", "component", "status"),
)

incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    # first_failure | opened | failover | official | notified | notify_failed | monitoring |
    # relapsed | update | acknowledged | resolved
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data_json", sa.Text),
    sa.Index("ix_incident_events_incident_at", "incident_id", "at"),
)

# What customers experienced, one row per route and hour, written by the follower in
# the transaction that writes the requests themselves (so a replay never counts twice):
# the status page's uptime and 90-day bars read these, never the requests table
traffic_hours = sa.Table(
    "traffic_hours",
    metadata,
    sa.Column("route", sa.String, primary_key=True),
    sa.Column("hour", sa.BigInteger, primary_key=True),  # unix seconds at the hour's start
    sa.Column("requests", sa.BigInteger, nullable=False),
    # ended failed or interrupted by Standby's or the providers' fault (not a 4xx)
    sa.Column("failed", sa.BigInteger, nullable=False),
    # answered, but later than the status page's objective allows
    sa.Column("slow", sa.BigInteger, nullable=False),
)

# Visitors of the status page who asked to be told (``standby.statuspage.subscriptions``)
subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.String, primary_key=True),  # opaque, random
    sa.Column("kind", sa.String, nullable=False),  # webhook | email
    sa.Column("address", sa.Text, nullable=False),  # the URL or the mail address
    sa.Column("components_json", sa.Text),  # public component names; NULL: all
    sa.Column("secret", sa.Text),  # webhook: the key its deliveries are signed with
    sa.Column("token_hash", sa.String, nullable=False),  # of the confirm/unsubscribe token
    sa.Column("state", sa.String, nullable=False),  # pending | active | unsubscribed
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("confirmed_at", sa.Double),
    sa.Column("ended_at", sa.Double),
    sa.Index("ix_subscribers_state", "state"),
    sa.Index("ix_subscribers_kind_address", "kind", "address"),
)

subscription_deliveries = sa.Table(
    "subscription_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.String, nullable=False),
    sa.Column("update_id", sa.String, nullable=False),  # the public update told
    sa.Column("incident_id", sa.String, nullable=False),  # its public incident
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),  # delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text),
    # one delivery per update and subscriber: a restart never tells twice
    sa.Index("ux_subscription_deliveries", "subscriber_id", "update_id", unique=True),
)

VERSION_TABLE = "journal_alembic_version"  # not alembic_version: the database may be shared

drill_runs = sa.Table(
    # each finished drill: what it was, its verdict (in the summary) and its report
    "drill_runs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("fault", sa.String, nullable=False),
    sa.Column("share", sa.Double, nullable=False),
    sa.Column("duration", sa.Double, nullable=False),
    sa.Column("scheduled", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("passed", sa.Boolean),
    sa.Column("summary_json", sa.Text, nullable=False),  # Drill.as_dict() without the report
    sa.Column("report_json", sa.Text),  # Report.as_dict(), for a report rendered later
    sa.Index("ix_drill_runs_started_at", "started_at"),
)

# The chat page's conversations (``standby.chat``), written there and by the importers of
# the ChatGPT and Claude exports.  ``owner`` is the client's name (NULL: a single-user
# gateway, or conversations the admin made); every read is scoped by it.
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("owner", sa.String),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("source", sa.String, nullable=False),  # chat | chatgpt | claude
    sa.Column("source_id", sa.String),  # the export's id of the conversation
    sa.Column("current_message_id", sa.String),  # the leaf of the branch on show
    # an imported conversation's id is derived from (source, source_id, owner), so a
    # second import finds it even where owner is NULL (which a unique index lets repeat)
    sa.Index("ux_conversations_source", "source", "source_id", "owner", unique=True),
    sa.Index("ix_conversations_owner_updated_at", "owner", "updated_at"),
    sa.Index("ix_conversations_updated_at", "updated_at"),
)

chat_messages = sa.Table(
    # a tree: an edited question or a regenerated answer is a sibling of the one it replaces
    "chat_messages",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("conversation_id", sa.String, nullable=False),
    # the conversation's owner, repeated (it never changes) so that a client's search on
    # PostgreSQL reads its own messages by index, without a join per match
    sa.Column("owner", sa.String),
    sa.Column("parent_id", sa.String),
    sa.Column("role", sa.String, nullable=False),  # system | user | assistant | tool
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("model", sa.String),  # the model that answered
    sa.Column("provider", sa.String),
    # the answer was continued on another target after its stream broke
    sa.Column("continued", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("state", sa.String, nullable=False),  # done | streaming | queued | failed | stopped
    sa.Column("request_id", sa.String),  # the journal's request (requests.rid)
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("extra_json", sa.Text),  # attachments, non-text parts, the export's metadata
    sa.Index("ix_chat_messages_conversation_created_at", "conversation_id", "created_at"),
    sa.Index("ix_chat_messages_request_id", "request_id"),
    # the answers a restart picks up (queued, or cut while streaming): few among many
    sa.Index("ix_chat_messages_state", "state"),
)

# Full-text search over the conversations is made by migration 0006 per database, outside
# this metadata (``standby.chat.fts5``, ``standby.chat.tsvector``): on SQLite the FTS5
# table ``chat_search`` (FTS5 keeps its own ``chat_search_*`` tables beside it); on
# PostgreSQL a generated ``search`` tsvector column with a GIN index on each of the two
# tables above, and the indexes that find the newest matching messages (all of them, or
# one owner's) without ranking every match.
SEARCH_TABLE = "chat_search"
SEARCH_COLUMN = "search"
SEARCH_INDEXES = (
    "ix_conversations_search",
    "ix_chat_messages_search",
    "ix_chat_messages_created_at",
    "ix_chat_messages_owner_created_at",
)
