-- The position (in routing's outbox) of the catalogue snapshot the copies come from:
-- an older snapshot delivered late is ignored.
CREATE TABLE tickets.catalogue_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL
);
