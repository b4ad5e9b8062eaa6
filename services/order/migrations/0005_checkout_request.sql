-- The request id (X-Request-Id, set by the gateway and kept across its
-- retries) of the checkout call that started the order's latest checkout:
-- written under the order's row lock, it commits with the 2PC decision or the
-- saga's start (an aborted 2PC attempt rolls it back). A call retried by the
-- gateway after its replica died then finds the order paid by its own earlier
-- try and answers "paid", not "already_paid".
ALTER TABLE orders ADD COLUMN checkout_request TEXT;
