-- The escalation service's own schema: establishments' escalation settings, the
-- escalations it decided, its view of the tickets it follows, the timers it fires
-- (closure expiry, recall of postponed tickets, first-response deadline), its copy of
-- routing's teams and categories, and the events it has processed.

-- Per establishment (UAI). No row: escalation is enabled when the referents' department
-- has escalation_enabled in routing's configuration, to the default central support, and
-- there is no first-response deadline.
CREATE TABLE escalation.settings (
    establishment         text        PRIMARY KEY,
    enabled               boolean     NOT NULL,
    support_department_id text        NOT NULL,
    -- a ticket of the establishment's referents that nobody has handled within this many
    -- hours is escalated by the service itself; NULL: never
    first_response_hours  integer     CHECK (first_response_hours BETWEEN 1 AND 8760),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            text
);

-- One row per decision: a referent's request forwarded or refused, or an automatic
-- escalation. The id is the event that caused it (the request, or the routing that
-- started the first-response deadline).
CREATE TABLE escalation.escalations (
    id                     uuid        PRIMARY KEY,
    ticket_id              uuid        NOT NULL,
    establishment          text,
    referent_department_id text        NOT NULL,
    support_department_id  text,
    requested_by_id        text        NOT NULL,
    requested_by_name      text,
    reason                 text        NOT NULL,
    automatic              boolean     NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('escalated', 'refused', 'returned')),
    refusal_reason         text,
    escalated_version      integer,
    requested_at           timestamptz NOT NULL,
    decided_at             timestamptz NOT NULL,
    returned_at            timestamptz,
    returned_by_id         text,
    returned_by_name       text
);
CREATE INDEX escalations_ticket ON escalation.escalations (ticket_id);
CREATE INDEX escalations_recent ON escalation.escalations (requested_at DESC, id DESC);

-- The tickets as the service has seen them (the newest version wins), and, per ticket,
-- the highest stream version after which each kind of wait is over. A timer set by the
-- event at version v is moot when an event at a version above v ended its wait, whatever
-- the order events arrive in.
CREATE TABLE escalation.tickets (
    ticket_id              uuid    PRIMARY KEY,
    number                 integer,
    subject                text,
    status                 text,
    category_id            text,
    department_id          text,
    establishment          text,
    escalation             text,
    version                integer NOT NULL,
    left_closure_requested integer NOT NULL DEFAULT 0,  -- an event leaving CLOSURE_REQUESTED
    left_postponed         integer NOT NULL DEFAULT 0,  -- an event leaving POSTPONED
    responded              integer NOT NULL DEFAULT 0,  -- a first response, or the ticket left the team
    returned               integer NOT NULL DEFAULT 0   -- the central support returned it
);

CREATE TABLE escalation.timers (
    event_id       uuid        PRIMARY KEY,  -- the event that set it; its action's idempotency key
    ticket_id      uuid        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('expire_closure', 'resume', 'first_response')),
    stream_version integer     NOT NULL,
    started_at     timestamptz NOT NULL,
    due_at         timestamptz,  -- NULL for first_response: the establishment's setting decides
    team           text,
    establishment  text,
    state          text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
    outcome        text,
    settled_at     timestamptz
);
CREATE INDEX timers_pending ON escalation.timers (kind, due_at) WHERE state = 'pending';
CREATE INDEX timers_ticket ON escalation.timers (ticket_id) WHERE state = 'pending';

-- The copy of routing's teams, managers and categories (CatalogueChanged snapshots).
CREATE TABLE escalation.teams (
    id                  text    PRIMARY KEY,
    department_id       text    NOT NULL,
    label_fr            text,
    per_establishment   boolean NOT NULL DEFAULT false,
    escalation_enabled  boolean NOT NULL DEFAULT false,
    closure_expiry_days integer
);

CREATE TABLE escalation.team_managers (
    team_id text NOT NULL REFERENCES escalation.teams ON DELETE CASCADE,
    user_id text NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_managers_user ON escalation.team_managers (user_id);

CREATE TABLE escalation.categories (
    id                  text PRIMARY KEY,
    department_id       text,
    closure_expiry_days integer  -- effective: routing resolved it up the tree
);

CREATE TABLE escalation.catalogue_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL
);

CREATE TABLE escalation.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
