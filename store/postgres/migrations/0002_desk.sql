-- The agent desk: leases on claims, the first reply of an assignment, SLA
-- escalation state, reply authors, and who is online.

ALTER TABLE conversations ADD COLUMN lease_until BIGINT;
ALTER TABLE conversations ADD COLUMN replied_at BIGINT;
ALTER TABLE conversations ADD COLUMN sla_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN sla_breached_at BIGINT;
CREATE INDEX conversations_lease ON conversations(lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX conversations_assignee ON conversations(assignee) WHERE status IN ('assigned', 'waiting');
CREATE INDEX conversations_first_due ON conversations(first_response_due) WHERE first_response_due IS NOT NULL;
CREATE INDEX conversations_next_due ON conversations(next_response_due) WHERE next_response_due IS NOT NULL;

ALTER TABLE messages ADD COLUMN author TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN auto INTEGER NOT NULL DEFAULT 0;

-- One row per agent who used the API: when they were last seen. Claims
-- lock the row, so one agent's concurrent claims take turns on capacity.
CREATE TABLE agents (
    name      TEXT   PRIMARY KEY,
    last_seen BIGINT NOT NULL
);
