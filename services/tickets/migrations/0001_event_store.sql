-- The ticket event store: the only truth about tickets. Rows are never updated or deleted.
CREATE TABLE tickets.events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_stream_id_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE FUNCTION tickets.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tickets.events is append-only';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON tickets.events
    FOR EACH ROW EXECUTE FUNCTION tickets.refuse_event_change();

-- One row per event to publish, written in the same transaction as the event.
CREATE TABLE tickets.outbox (
    global_position bigint      PRIMARY KEY REFERENCES tickets.events (global_position),
    event_id        uuid        NOT NULL,
    routing_key     text        NOT NULL,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_pending ON tickets.outbox (global_position) WHERE published_at IS NULL;

-- Human ticket numbers ("n°53350").
CREATE SEQUENCE tickets.ticket_number START WITH 1000;
