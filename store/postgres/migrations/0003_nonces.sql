-- Nonces claimed once until they expire (store.Store.ClaimNonce): the
-- signed webhook's replay claims, shared by every node so that a replay
-- to another node, or after a restart, is refused too.
CREATE TABLE nonces (
    scope      text COLLATE "C" NOT NULL,
    nonce      bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX nonces_expires_at ON nonces (expires_at);
