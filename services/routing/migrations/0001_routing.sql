-- The routing service's own schema: the category tree, departments and their managers,
-- FAQ entries, assignment state, and the events it has processed.

CREATE TABLE routing.departments (
    id                  text PRIMARY KEY,
    label_fr            text NOT NULL,
    label_en            text,
    -- per establishment: each establishment (UAI) has its own team of referents, and a
    -- ticket goes to the team of its requester's establishment.
    per_establishment   boolean NOT NULL DEFAULT false,
    assignment_policy   text NOT NULL DEFAULT 'none'
                        CHECK (assignment_policy IN ('none', 'round_robin', 'least_loaded')),
    closure_expiry_days integer CHECK (closure_expiry_days > 0),
    escalation_enabled  boolean NOT NULL DEFAULT false
);

CREATE TABLE routing.managers (
    department_id text    NOT NULL REFERENCES routing.departments ON DELETE CASCADE,
    -- '' for a global department; the UAI for a per-establishment one
    establishment text    NOT NULL DEFAULT '',
    user_id       text    NOT NULL,
    name          text,
    email         text,
    available     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (department_id, establishment, user_id)
);
CREATE INDEX managers_user ON routing.managers (user_id);

CREATE TABLE routing.categories (
    id                  text PRIMARY KEY,
    label_fr            text NOT NULL,
    label_en            text,
    parent_id           text REFERENCES routing.categories DEFERRABLE INITIALLY DEFERRED,
    department_id       text REFERENCES routing.departments,  -- NULL: inherited from the parent
    assignment_policy   text CHECK (assignment_policy IN ('none', 'round_robin', 'least_loaded')),
    closure_expiry_days integer CHECK (closure_expiry_days > 0),
    position            integer NOT NULL DEFAULT 0
);

CREATE TABLE routing.faq (
    id          text PRIMARY KEY,
    category_id text NOT NULL REFERENCES routing.categories ON DELETE CASCADE,
    question_fr text NOT NULL,
    answer_fr   text NOT NULL,
    question_en text,
    answer_en   text,
    position    integer NOT NULL DEFAULT 0
);

-- round_robin: who got the last ticket of each team (a team is a department, or a
-- department's referents for one establishment).
CREATE TABLE routing.round_robin (
    team         text PRIMARY KEY,
    last_user_id text NOT NULL
);

-- least_loaded: the tickets routing knows of, from the ticket events it consumes (the
-- newest version wins, so a late redelivery cannot reopen a closed ticket).
CREATE TABLE routing.tickets (
    ticket_id   uuid    PRIMARY KEY,
    team        text,
    assignee_id text,
    open        boolean NOT NULL,
    version     integer NOT NULL
);
CREATE INDEX tickets_load ON routing.tickets (team, assignee_id) WHERE open;

CREATE TABLE routing.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events routing publishes (membership and catalogue snapshots), relayed like tickets'.
CREATE TABLE routing.outbox (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    routing_key     text        NOT NULL,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_pending ON routing.outbox (global_position) WHERE published_at IS NULL;
