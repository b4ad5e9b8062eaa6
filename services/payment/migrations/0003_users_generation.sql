-- Bumped by every batch_init that overwrites the row (services/common/src/reset.rs):
-- a saga compensation gives back only to the generation its step took from.
ALTER TABLE users ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
