-- Schema version 2: what audit export (store/auditexport) keeps beside
-- the chain: signed checkpoints by seq, and each sink's cursor.

CREATE TABLE audit_checkpoints (
    seq bigint PRIMARY KEY,
    rec json NOT NULL
);

CREATE TABLE audit_cursors (
    sink text COLLATE "C" PRIMARY KEY,
    rec  json NOT NULL
);
