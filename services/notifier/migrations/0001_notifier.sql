-- The notifier's own schema: what it knows of tickets and people (from the events and
-- routing's snapshots), the news feed, the email queue and its delivery log, and each
-- person's notification preferences.

CREATE TABLE notifier.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Who is on a ticket, as of each version: one row per change (an invitation, a watch,
-- an escalation's referent department, an attachment's visibility, an answer to a
-- question). The state as of version N is, per (kind, key), the row of the highest
-- version <= N, so events handled out of order still give each event its own state.
CREATE TABLE notifier.ticket_facts (
    ticket_id uuid    NOT NULL,
    kind      text    NOT NULL CHECK (kind IN ('invitee', 'watcher', 'referent', 'attachment', 'answer')),
    key       text    NOT NULL,
    version   integer NOT NULL,
    present   boolean NOT NULL,
    data      jsonb   NOT NULL DEFAULT '{}',
    PRIMARY KEY (ticket_id, kind, key, version)
);

-- People and their addresses, from the events, routing's snapshots and their tokens.
CREATE TABLE notifier.people (
    user_id    text        PRIMARY KEY,
    name       text,
    email      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The copy of routing's teams (a department, or a department's referents for one
-- establishment: "dept:UAI"), their managers, and the category labels.
CREATE TABLE notifier.teams (
    id                text PRIMARY KEY,
    department_id     text NOT NULL,
    label_fr          text NOT NULL,
    label_en          text,
    assignment_policy text
);
CREATE TABLE notifier.team_managers (
    team_id   text    NOT NULL REFERENCES notifier.teams ON DELETE CASCADE,
    user_id   text    NOT NULL,
    name      text,
    email     text,
    available boolean NOT NULL DEFAULT true,
    PRIMARY KEY (team_id, user_id)
);
CREATE TABLE notifier.categories (
    id       text PRIMARY KEY,
    label_fr text NOT NULL,
    label_en text
);
-- The position (in routing's outbox) of the snapshot the copy comes from.
CREATE TABLE notifier.catalogue_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL
);

-- The news feed ("fil de nouveautés"): one entry per event and recipient, summarised in
-- both languages (the reader's preference picks one when it is read).
CREATE TABLE notifier.feed_entries (
    position      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    user_id       text        NOT NULL,
    event_id      uuid        NOT NULL,
    ticket_id     uuid        NOT NULL,
    ticket_number integer     NOT NULL,
    event_type    text        NOT NULL,
    summary_fr    text        NOT NULL,
    summary_en    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    read_at       timestamptz,
    UNIQUE (event_id, user_id)
);
CREATE INDEX feed_by_user ON notifier.feed_entries (user_id, position DESC);
CREATE INDEX feed_unread ON notifier.feed_entries (user_id, position DESC) WHERE read_at IS NULL;

-- The email queue: one row per (event, recipient), rendered when queued. The sender
-- claims due rows with FOR UPDATE SKIP LOCKED and marks them sent in the same
-- transaction; sent_at is when the SMTP server accepted the message.
CREATE TABLE notifier.emails (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid        NOT NULL,
    recipient_id      text        NOT NULL,
    ticket_id         uuid        NOT NULL,
    ticket_number     integer     NOT NULL,
    event_type        text        NOT NULL,
    event_occurred_at timestamptz NOT NULL,
    to_address        text        NOT NULL,
    message_id        text        NOT NULL UNIQUE,
    message           bytea       NOT NULL,
    status            text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz,
    UNIQUE (event_id, recipient_id)
);
CREATE INDEX emails_due ON notifier.emails (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX emails_ticket ON notifier.emails (ticket_id);

-- Every delivery attempt, written (committed) before the message goes to the SMTP
-- server and finished in the transaction that records its outcome: an attempt left
-- unfinished means the sender stopped in the middle, so the next one may be a duplicate.
CREATE TABLE notifier.delivery_attempts (
    email_id    bigint      NOT NULL REFERENCES notifier.emails ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text        CHECK (outcome IN ('sent', 'retry', 'failed')),
    error       text,
    PRIMARY KEY (email_id, attempt)
);

-- Per person: language of emails and feed summaries, and the kinds of email turned off
-- (the feed always gets the entry).
CREATE TABLE notifier.preferences (
    user_id    text        PRIMARY KEY,
    language   text        NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
    email_off  text[]      NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
