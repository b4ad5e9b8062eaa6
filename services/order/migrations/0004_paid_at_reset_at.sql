-- paid_at: when a checkout paid the order; reset_at: when the latest batch_init
-- wrote it (NULL for orders made by create). `harness verify` judges the latest
-- batch: the orders it wrote and the orders paid since.
ALTER TABLE orders ADD COLUMN paid_at TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN reset_at TIMESTAMPTZ;
