-- The reporting service's own schema: each ticket's events as received (its facts are
-- folded from them again whenever one arrives, whatever the order), the facts per
-- ticket, its periods in each status and its escalations, the copy of routing's teams
-- and categories (who may see which figures, and their labels), and processed events.

CREATE TABLE reporting.ticket_events (
    ticket_id       uuid        NOT NULL,
    stream_version  integer     NOT NULL,
    event_id        uuid        NOT NULL,
    global_position bigint,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_id        text        NOT NULL,
    actor_name      text,
    actor_kind      text        NOT NULL,
    data            jsonb       NOT NULL,
    PRIMARY KEY (ticket_id, stream_version)
);

-- One row per ticket (see services/reporting/facts.py for what each column means).
-- Durations are in seconds, wall-clock and in working time (shared/calendar.py, as
-- configured when the row was folded: rebuild after changing WORKING_HOURS).
CREATE TABLE reporting.tickets (
    ticket_id                      uuid        PRIMARY KEY,
    version                        integer     NOT NULL,
    number                         integer,
    subject                        text        NOT NULL DEFAULT '',
    establishment                  text,
    created_at                     timestamptz,
    category_id                    text,
    department_id                  text,
    assignee_id                    text,
    routed_at                      timestamptz,
    status                         text,
    first_response_at              timestamptz,
    first_response_by              text,
    first_response_department_id   text,
    first_response_category_id     text,
    first_response_seconds         double precision,
    first_response_working_seconds double precision,
    resolved_at                    timestamptz,
    resolution                     text,
    resolution_department_id       text,
    resolution_category_id         text,
    resolution_assignee_id         text,
    resolution_seconds             double precision,
    resolution_working_seconds     double precision,
    reopen_count                   integer     NOT NULL DEFAULT 0,
    -- the first escalation to the central support, from the creation
    escalated_at                   timestamptz,
    escalation_seconds             double precision,
    escalation_working_seconds     double precision,
    approved_at                    timestamptz,
    rating                         smallint,
    has_feedback                   boolean     NOT NULL DEFAULT false
);
-- Reports select facts by instant, most often for departments (a manager's report),
-- or for an establishment (a referent's).
CREATE INDEX tickets_created ON reporting.tickets (created_at);
CREATE INDEX tickets_department_created ON reporting.tickets (department_id, created_at);
CREATE INDEX tickets_establishment_created ON reporting.tickets (establishment, created_at);
CREATE INDEX tickets_first_response ON reporting.tickets (first_response_department_id, first_response_at);
CREATE INDEX tickets_resolved ON reporting.tickets (resolution_department_id, resolved_at);
CREATE INDEX tickets_approved ON reporting.tickets (resolution_department_id, approved_at);

CREATE TABLE reporting.status_periods (
    ticket_id       uuid        NOT NULL REFERENCES reporting.tickets ON DELETE CASCADE,
    seq             integer     NOT NULL,
    status          text        NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    department_id   text,
    category_id     text,
    assignee_id     text,
    seconds         double precision,
    working_seconds double precision,
    PRIMARY KEY (ticket_id, seq)
);
CREATE INDEX status_periods_ended ON reporting.status_periods (department_id, ended_at);
CREATE INDEX status_periods_started ON reporting.status_periods (department_id, started_at);

CREATE TABLE reporting.escalations (
    ticket_id             uuid    NOT NULL REFERENCES reporting.tickets ON DELETE CASCADE,
    seq                   integer NOT NULL,
    department_id         text,
    category_id           text,
    requested_by_id       text,
    requested_at          timestamptz,
    escalated_at          timestamptz,
    support_department_id text,
    refused_at            timestamptz,
    returned_at           timestamptz,
    PRIMARY KEY (ticket_id, seq)
);

-- Routing's teams (a global department, or one establishment's referents), their
-- managers and the categories, replaced whole by each CatalogueChanged snapshot.
CREATE TABLE reporting.teams (
    id                text    PRIMARY KEY,
    department_id     text    NOT NULL,
    label_fr          text,
    label_en          text,
    per_establishment boolean NOT NULL
);
CREATE TABLE reporting.team_managers (
    team_id text NOT NULL,
    user_id text NOT NULL,
    name    text,
    PRIMARY KEY (team_id, user_id)
);
CREATE TABLE reporting.categories (
    id       text PRIMARY KEY,
    label_fr text,
    label_en text
);
CREATE TABLE reporting.catalogue_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL
);

CREATE TABLE reporting.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
