-- A participant's record of each saga step it was asked about: at most one row
-- (one effect) per saga. 'applied' keeps the work so a compensation can undo
-- exactly it; 'tombstone' is a compensation that arrived before its action and
-- refuses the action when it comes.
CREATE TABLE IF NOT EXISTS saga_effects (
    saga_id    UUID PRIMARY KEY,
    order_id   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('applied', 'refused', 'compensated', 'tombstone')),
    work       JSONB,
    reason     JSONB,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What the step's apply saw of the rows it changed (participant.rs `Receipt`):
-- the generation of each row, so a compensation skips rows a batch_init reset.
ALTER TABLE saga_effects ADD COLUMN IF NOT EXISTS receipt JSONB;

-- Retention (store.rs `forget_old`) deletes effects no command touched for long.
CREATE INDEX IF NOT EXISTS saga_effects_updated ON saga_effects (updated_at);
