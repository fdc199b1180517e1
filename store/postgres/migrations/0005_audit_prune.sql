-- The prune mark of the audit chain (store.Store.PruneAudit): the seq and
-- hash of the last event retention deleted. VerifyAudit links the first
-- kept event to it. At most one row; none until the first prune.
CREATE TABLE audit_pruned (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
