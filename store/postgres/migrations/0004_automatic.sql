-- A machine-written inbound message (an out-of-office reply, a bounce,
-- bulk mail, our own mail seen again) is kept with its kind, so the agent
-- sees what it is and replies never default to its sender.
ALTER TABLE messages ADD COLUMN automatic TEXT NOT NULL DEFAULT '';
