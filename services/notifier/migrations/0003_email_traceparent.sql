-- The trace context of the event that queued the email (shared.tracing): the SMTP
-- send, later and in another loop, continues that trace. NULL when tracing is off.
ALTER TABLE notifier.emails ADD COLUMN traceparent text;
