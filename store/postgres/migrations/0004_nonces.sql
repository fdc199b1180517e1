-- One-time nonces (ClaimNonce): replay caches that survive a restart and
-- are shared by every node, e.g. the signed MDM webhook's.
CREATE TABLE nonces (
    scope      text COLLATE "C" NOT NULL,
    nonce      text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX nonces_expiry ON nonces (scope, expires_at);
