-- Set while a checkout that does not hold the order's row lock to its end (a
-- saga) is in flight: the order's lines are frozen, so the saga charges and
-- takes exactly what the order says when it ends.
ALTER TABLE orders ADD COLUMN checkout_in_progress BOOLEAN NOT NULL DEFAULT FALSE;
