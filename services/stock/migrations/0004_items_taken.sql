-- taken: the units checkouts took from the row since its latest batch_init
-- (a saga step's reservation or a committed 2PC branch), less what saga
-- compensations gave back. `stock + taken` stays at most MAX_VALUE (an add
-- that would pass it is refused), so no compensation can overflow the row.
ALTER TABLE items ADD COLUMN taken BIGINT NOT NULL DEFAULT 0;
-- Rows that exist when this runs start at 0: a reservation in flight across the
-- upgrade is not counted until the row's next batch_init.
