-- Users and their credit. Ids are text: UUIDs from create_user, "0".."n-1" from batch_init.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    credit  BIGINT NOT NULL CHECK (credit >= 0)
);
