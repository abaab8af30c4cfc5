-- A stream's versions have no gaps: version n needs version n-1. Together with
-- UNIQUE (stream_id, stream_version) this makes the expected-version check of an append
-- part of the INSERT itself, so an append is one statement. Rows inserted earlier by
-- the same statement are visible here, so several events can be appended at once.
CREATE FUNCTION tickets.refuse_version_gap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stream_version > 1 AND NOT EXISTS (
        SELECT 1 FROM tickets.events
         WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1
    ) THEN
        RAISE EXCEPTION 'stream % has no version %', NEW.stream_id, NEW.stream_version - 1
            USING ERRCODE = 'GU409';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER events_gap_free BEFORE INSERT ON tickets.events
    FOR EACH ROW EXECUTE FUNCTION tickets.refuse_version_gap();
