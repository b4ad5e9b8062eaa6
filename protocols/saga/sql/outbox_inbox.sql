-- Transactional outbox: rows are written in the same transaction as the state
-- change they announce; the relay publishes them to Kafka and deletes them
-- (`sent_at` is set only by builds that kept sent rows for a while).
CREATE TABLE IF NOT EXISTS saga_outbox (
    id         BIGSERIAL PRIMARY KEY,
    message_id UUID NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    msg_key    TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS saga_outbox_unsent ON saga_outbox (id) WHERE sent_at IS NULL;

-- Inbox: ids of the messages whose effect committed; a redelivered or replayed
-- message finds its id here and is not applied again.
CREATE TABLE IF NOT EXISTS saga_inbox (
    message_id  UUID PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Retention (store.rs `forget_old`) deletes the oldest rows.
CREATE INDEX IF NOT EXISTS saga_inbox_received ON saga_inbox (received_at);

-- Dead letters: messages whose handler failed deterministically (a constraint
-- or a value out of range) a bounded number of times. They are not claimed in
-- the inbox, so a re-sent or replayed copy is tried again; the saga they belong
-- to stays in flight, where the harness and `harness status` show it.
CREATE TABLE IF NOT EXISTS saga_dead_letters (
    message_id UUID PRIMARY KEY,
    saga_id    UUID NOT NULL,
    topic      TEXT NOT NULL,
    part       INT NOT NULL,
    msg_offset BIGINT NOT NULL,
    payload    JSONB NOT NULL,
    error      TEXT NOT NULL,
    attempts   INT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
