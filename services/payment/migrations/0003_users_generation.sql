-- Written by every batch_init that overwrites the row (services/common/src/reset.rs).
-- generation: a saga compensation gives back only to the generation its step took from.
-- reset_at: when the latest batch_init wrote the row (NULL for rows made by create),
-- so `harness verify` can judge the latest batch alone.
ALTER TABLE users ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN reset_at TIMESTAMPTZ;
