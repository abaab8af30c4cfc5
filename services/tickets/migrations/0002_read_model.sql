-- The ticket view: written in the same transaction as the events it reflects, and
-- rebuildable from tickets.events at any time (guichet rebuild-projections).
CREATE TABLE tickets.ticket_view (
    id                     uuid        PRIMARY KEY,
    number                 bigint      NOT NULL UNIQUE,
    status                 text        NOT NULL,
    category_id            text        NOT NULL,
    department_id          text,
    referent_department_id text,
    establishment          text,
    escalation             text        NOT NULL,
    requester_id           text        NOT NULL,
    assignee_id            text,
    invitee_ids            text[]      NOT NULL DEFAULT '{}',
    watcher_ids            text[]      NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    version                integer     NOT NULL,
    state                  jsonb       NOT NULL
);
CREATE INDEX ticket_view_requester ON tickets.ticket_view (requester_id, updated_at DESC);
CREATE INDEX ticket_view_assignee ON tickets.ticket_view (assignee_id, updated_at DESC);
CREATE INDEX ticket_view_department ON tickets.ticket_view (department_id, updated_at DESC);
CREATE INDEX ticket_view_invitees ON tickets.ticket_view USING gin (invitee_ids);
CREATE INDEX ticket_view_watchers ON tickets.ticket_view USING gin (watcher_ids);

-- A repeated idempotency key returns the first result and appends nothing.
CREATE TABLE tickets.idempotency_keys (
    actor_id    text        NOT NULL,
    key         text        NOT NULL,
    action      text        NOT NULL,
    fingerprint text        NOT NULL,
    ticket_id   uuid        NOT NULL,
    result      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, key)
);

-- Who manages which department. Fed by the routing service's membership events once
-- it exists; the tickets service reads it for access rules, never routing's tables.
CREATE TABLE tickets.department_managers (
    department_id text NOT NULL,
    user_id       text NOT NULL,
    name          text,
    email         text,
    PRIMARY KEY (department_id, user_id)
);
CREATE INDEX department_managers_user ON tickets.department_managers (user_id);

-- Every identity seen, so users can be invited or assigned by login.
CREATE TABLE tickets.users (
    id            text PRIMARY KEY,
    name          text,
    email         text,
    establishment text,
    seen_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_email ON tickets.users (lower(email));
