-- Items and their stock. Ids are text: UUIDs from create, "0".."n-1" from batch_init.
CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    stock   BIGINT NOT NULL CHECK (stock >= 0),
    price   BIGINT NOT NULL CHECK (price >= 0)
);
