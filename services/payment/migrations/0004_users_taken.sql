-- taken: the credit checkouts debited from the row since its latest batch_init
-- (a saga step's debit or a committed 2PC branch), less what saga refunds gave
-- back. `credit + taken` stays at most MAX_VALUE (an add_funds that would pass
-- it is refused), so no refund can overflow the row.
ALTER TABLE users ADD COLUMN taken BIGINT NOT NULL DEFAULT 0;
-- Rows that exist when this runs start at 0: a reservation in flight across the
-- upgrade is not counted until the row's next batch_init.
