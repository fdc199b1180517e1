-- hardbound schema, version 1. Every record is kept whole as JSON (rec),
-- the format the Badger backend stores, with the columns its lookups,
-- filters and orderings need beside it. Keys compare as bytes (COLLATE
-- "C") so listings come back in the order the Badger backend gives them,
-- whatever the database's locale.

CREATE TABLE devices (
    id         text COLLATE "C" PRIMARY KEY,
    status     text NOT NULL,
    compliance text NOT NULL,
    profile    text NOT NULL,
    rec        json NOT NULL
);

CREATE TABLE aliases (
    kind      text COLLATE "C" NOT NULL,
    value     text COLLATE "C" NOT NULL,
    device_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX aliases_device ON aliases (device_id);

CREATE TABLE certs (
    sha256    text COLLATE "C" PRIMARY KEY, -- lower-case hex
    serial    text COLLATE "C" NOT NULL UNIQUE,
    device_id text COLLATE "C" NOT NULL,
    revoked   boolean NOT NULL,
    rec       json NOT NULL, -- the binding, without the DER
    der       bytea
);
CREATE INDEX certs_device ON certs (device_id, sha256);

CREATE TABLE attestations (
    id  text COLLATE "C" PRIMARY KEY,
    rec json NOT NULL
);

-- attestation_keys points a key hash at the latest attestation of it.
CREATE TABLE attestation_keys (
    key_sha256     text COLLATE "C" PRIMARY KEY,
    attestation_id text COLLATE "C" NOT NULL
);

CREATE TABLE challenges (
    sha256     text COLLATE "C" PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    rec        json NOT NULL
);
CREATE INDEX challenges_expiry ON challenges (expires_at);

CREATE TABLE sessions (
    nas             text COLLATE "C" NOT NULL,
    acct_session_id text COLLATE "C" NOT NULL,
    device_id       text COLLATE "C",
    live            boolean NOT NULL,
    rec             json NOT NULL,
    PRIMARY KEY (nas, acct_session_id)
);
CREATE INDEX sessions_device ON sessions (device_id, nas, acct_session_id);

CREATE TABLE acme_accounts (
    id         text COLLATE "C" PRIMARY KEY,
    thumbprint text COLLATE "C" NOT NULL UNIQUE,
    rec        json NOT NULL
);

-- The audit chain: one chain for every node, seq global. audit_head is
-- its last link; appenders lock that one row, which orders them.
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    rec json NOT NULL
);
CREATE TABLE audit_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, '');

-- The change feed. Every transaction that changes a device, a binding or
-- an attestation locks feed_head first, writes its change with the next
-- seq and moves the head, so seqs have no gaps and follow commit order:
-- a node that applied seq N has seen everything up to N.
CREATE TABLE feed_head (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq bigint NOT NULL
);
INSERT INTO feed_head (seq) VALUES (0);
CREATE TABLE changes (
    seq    bigint PRIMARY KEY,
    at     timestamptz NOT NULL,
    change json NOT NULL
);
