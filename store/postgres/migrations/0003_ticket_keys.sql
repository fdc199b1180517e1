-- The EAP-TLS session ticket keys the nodes share (store.TicketKeys): one
-- row, written by compare-and-swap on version. Not in backups: the keys
-- are sealed by the nodes and worth nothing after the tickets they made.
CREATE TABLE ticket_keys (
    id      smallint PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL,
    rec     json NOT NULL
);
