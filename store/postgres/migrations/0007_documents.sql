-- Cached documents (store.Document): one row per name, e.g. the Android
-- attestation status list every node shares. A put keeps the newest fetch
-- (the WHERE of its upsert). Not in backups: a cache its owner fetches again.
CREATE TABLE documents (
    name    text COLLATE "C" PRIMARY KEY,
    source  text NOT NULL,
    fetched timestamptz NOT NULL,
    body    bytea NOT NULL
);
