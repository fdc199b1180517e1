-- Signed audit checkpoints (one per chain seq) and the export cursor of
-- each audit sink (store/auditexport). Shared by every node, like the
-- chain itself.
CREATE TABLE audit_checkpoints (
    seq bigint PRIMARY KEY,
    rec json NOT NULL
);
CREATE TABLE audit_cursors (
    sink text COLLATE "C" PRIMARY KEY,
    rec  json NOT NULL
);
