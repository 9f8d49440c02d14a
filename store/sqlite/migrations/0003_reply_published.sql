-- A reply is recorded before it is published for its channel's connector;
-- published_at says the publish was acknowledged, so replies whose publish
-- failed (a crash, the bus away) are found and published again.
ALTER TABLE messages ADD COLUMN published_at BIGINT;
UPDATE messages SET published_at = created_at WHERE direction = 'out';
CREATE INDEX messages_unpublished ON messages(created_at) WHERE direction = 'out' AND published_at IS NULL;

-- A reply's idempotency key names one reply, whatever its channel.
CREATE UNIQUE INDEX messages_reply_key ON messages(channel_message_id) WHERE direction = 'out';
