-- Saga state of the orchestrator (the order service). `state` is the
-- serialised machine (protocols/saga/src/machine.rs); `status` is copied out of
-- it for the indexes below.
CREATE TABLE IF NOT EXISTS sagas (
    saga_id     UUID PRIMARY KEY,
    order_id    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'paid', 'rejected')),
    state       JSONB NOT NULL,
    request     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
-- At most one saga in flight per order: concurrent checkouts join it. (Several
-- paid sagas per order id are possible: batch_init resets orders to unpaid.)
CREATE UNIQUE INDEX IF NOT EXISTS sagas_one_active_per_order ON sagas (order_id)
    WHERE status IN ('running', 'compensating');
-- Recovery scans only sagas in flight.
CREATE INDEX IF NOT EXISTS sagas_in_flight ON sagas (updated_at) WHERE status IN ('running', 'compensating');
