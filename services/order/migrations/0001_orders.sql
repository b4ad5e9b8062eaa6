-- Orders and their lines. Ids are text: UUIDs from create, "0".."n-1" from batch_init.
CREATE TABLE orders (
    order_id   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    paid       BOOLEAN NOT NULL DEFAULT FALSE,
    total_cost BIGINT NOT NULL CHECK (total_cost >= 0)
);

-- One row per addItem call, in call order (seq); the same item may appear twice,
-- as in the course template. Protocols merge lines per item at checkout.
CREATE TABLE order_items (
    order_id   TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    item_id    TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, seq)
);
