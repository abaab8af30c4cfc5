-- The attachments service's own schema: what is known of each uploaded file (the bytes
-- are in the blob store, content-addressed by sha256), and the ticket events it has
-- processed.

CREATE TABLE attachments.files (
    id            uuid        PRIMARY KEY,
    uploader_id   text        NOT NULL,
    uploader_name text,
    filename      text        NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    size          bigint      NOT NULL CHECK (size > 0),
    content_type  text        NOT NULL,
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL,
    -- The ticket the file is claimed by. A claim is pending until the tickets service
    -- has appended AttachmentAdded (attached_at); a pending claim older than the lease
    -- may be taken over, or is checked with the tickets service by the sweeper.
    ticket_id     uuid,
    claimed_at    timestamptz,
    attached_at   timestamptz,
    visibility    text        CHECK (visibility IN ('public', 'internal')),
    -- AttachmentRemoved: the metadata stays for the ticket's history, the blob goes
    -- once no other file uses it.
    removed_at    timestamptz,
    CHECK ((ticket_id IS NULL) = (claimed_at IS NULL)),
    CHECK (attached_at IS NULL OR ticket_id IS NOT NULL)
);
CREATE INDEX files_sha256 ON attachments.files (sha256) WHERE removed_at IS NULL;
CREATE INDEX files_not_attached ON attachments.files (created_at) WHERE attached_at IS NULL AND removed_at IS NULL;
CREATE INDEX files_ticket ON attachments.files (ticket_id) WHERE ticket_id IS NOT NULL;

CREATE TABLE attachments.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
