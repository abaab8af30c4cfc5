-- The assignee routing chose for the event that routed a ticket. Routing writes it down
-- with the tentative load, before it asks the tickets service; if routing dies before it
-- records the event as handled, the redelivered event asks again for the same assignee
-- under the same idempotency key, instead of deciding again (round robin or the loads
-- have moved on since: another assignee under the same key would be refused).
CREATE TABLE routing.assignment_decisions (
    event_id    uuid        PRIMARY KEY,
    ticket_id   uuid        NOT NULL,
    team        text        NOT NULL,
    assignee_id text        NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now()
);
