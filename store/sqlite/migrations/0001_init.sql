-- inroute store schema v1 (SQLite). Times are unix microseconds, UTC.
-- Booleans are 0/1 so one set of queries serves SQLite and PostgreSQL.

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL DEFAULT '',
    -- The contact this one was merged into (always a root: merges flatten).
    merged_into INTEGER REFERENCES contacts(id),
    created_at  BIGINT  NOT NULL
);
CREATE INDEX contacts_merged_into ON contacts(merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE identities (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    kind       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    verified   INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL
);
-- A verified identity belongs to exactly one contact.
CREATE UNIQUE INDEX identities_verified ON identities(kind, value) WHERE verified = 1;
CREATE UNIQUE INDEX identities_contact ON identities(contact_id, kind, value);
CREATE INDEX identities_value ON identities(value);

CREATE TABLE conversations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id         INTEGER NOT NULL REFERENCES contacts(id),
    -- The root of the contact's merge group: threading looks here.
    customer_id        INTEGER NOT NULL,
    channel            TEXT    NOT NULL,
    last_channel       TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    queue              TEXT    NOT NULL,
    urgency            TEXT    NOT NULL,
    urgency_rank       INTEGER NOT NULL,
    topic              TEXT    NOT NULL,
    assignee           TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    rules_version      TEXT    NOT NULL DEFAULT '',
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    queued_at          BIGINT  NOT NULL,
    last_inbound_at    BIGINT  NOT NULL,
    resolved_at        BIGINT,
    first_response_due BIGINT,
    next_response_due  BIGINT
);
CREATE INDEX conversations_customer ON conversations(customer_id, updated_at);
CREATE INDEX conversations_contact ON conversations(contact_id);
CREATE INDEX conversations_waiting ON conversations(urgency_rank DESC, queued_at) WHERE status = 'queued';
CREATE INDEX conversations_resolved ON conversations(resolved_at) WHERE status = 'resolved';

CREATE TABLE messages (
    id                 TEXT    PRIMARY KEY,
    conversation_id    INTEGER NOT NULL REFERENCES conversations(id),
    contact_id         INTEGER NOT NULL,
    direction          TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    channel_message_id TEXT    NOT NULL,
    from_kind          TEXT    NOT NULL,
    from_value         TEXT    NOT NULL,
    from_name          TEXT    NOT NULL DEFAULT '',
    to_address         TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    text               TEXT    NOT NULL DEFAULT '',
    html               TEXT    NOT NULL DEFAULT '',
    thread_message_id  TEXT    NOT NULL DEFAULT '',
    thread_json        TEXT    NOT NULL DEFAULT '{}',
    language           TEXT    NOT NULL DEFAULT '',
    extra_json         TEXT    NOT NULL DEFAULT '{}',
    decision_json      TEXT    NOT NULL DEFAULT '',
    threading          TEXT    NOT NULL DEFAULT '',
    delivery_status    TEXT    NOT NULL DEFAULT '',
    delivery_error     TEXT    NOT NULL DEFAULT '',
    received_at        BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL
);
-- Exactly one copy of every channel message, however often it is delivered.
CREATE UNIQUE INDEX messages_channel_id ON messages(channel_message_id, channel);
CREATE INDEX messages_conversation ON messages(conversation_id, received_at);
CREATE INDEX messages_thread ON messages(thread_message_id) WHERE thread_message_id <> '';

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT    NOT NULL REFERENCES messages(id),
    name         TEXT    NOT NULL DEFAULT '',
    content_type TEXT    NOT NULL DEFAULT '',
    size         BIGINT  NOT NULL DEFAULT 0,
    ref          TEXT    NOT NULL
);
CREATE INDEX attachments_message ON attachments(message_id);
CREATE INDEX attachments_ref ON attachments(ref);

-- Append-only: who did what to which conversation, and when.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER,
    contact_id      INTEGER,
    kind            TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    at              BIGINT NOT NULL,
    data_json       TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX events_conversation ON events(conversation_id, id);

CREATE TABLE merges (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    into_id    INTEGER NOT NULL,
    from_id    INTEGER NOT NULL,
    -- contact id -> its merged_into before the merge (0 for none), for undo.
    moved_json TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    auto       INTEGER NOT NULL DEFAULT 0,
    at         BIGINT  NOT NULL,
    undone_at  BIGINT
);
