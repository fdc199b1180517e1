-- ACME orders with their authorization and challenge (store.ACMEOrder),
-- shared by every node so that a client may send each request of an
-- enrollment to another one. version is the compare-and-swap counter;
-- expired rows are deleted by CreateACMEOrder, a bounded batch at a time.
CREATE TABLE acme_orders (
    id         text COLLATE "C" PRIMARY KEY,
    account    text COLLATE "C" NOT NULL,
    version    bigint NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rec        json NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account, created_at, id);
CREATE INDEX acme_orders_expiry ON acme_orders (expires_at);
