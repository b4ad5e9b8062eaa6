-- 2PC decision log (protocols/twopc/src/decision_log.rs). The primary key makes
-- the decision of a transaction unique: commit and abort can never both be recorded.
CREATE TABLE IF NOT EXISTS twopc_decisions (
    txn_id      UUID PRIMARY KEY,
    coordinator TEXT NOT NULL,
    order_id    TEXT,
    decision    TEXT NOT NULL CHECK (decision IN ('commit', 'abort')),
    finished    BOOLEAN NOT NULL DEFAULT FALSE,
    decided_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- An order is paid by at most one committed transaction.
CREATE UNIQUE INDEX IF NOT EXISTS twopc_one_commit_per_order ON twopc_decisions (order_id) WHERE decision = 'commit';

-- Recovery scans only what is unfinished.
CREATE INDEX IF NOT EXISTS twopc_unfinished ON twopc_decisions (decided_at) WHERE NOT finished;
