-- 2PC participant log (protocols/twopc/src/participant.rs): 'committed' rows are
-- written inside the prepared transaction and so exist only if it committed;
-- 'aborted' rows are tombstones that refuse a prepare arriving after its rollback.
CREATE TABLE IF NOT EXISTS twopc_branches (
    gid         TEXT PRIMARY KEY,
    outcome     TEXT NOT NULL CHECK (outcome IN ('committed', 'aborted')),
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
