-- Where a referent's escalation can succeed now, as the escalation service announces it
-- (EscalableTeamsChanged): the tickets service offers "escalate" only there. Until a
-- first announcement (no row in escalable_known) it offers it wherever the rules allow.
CREATE TABLE tickets.escalable_teams (
    team text PRIMARY KEY
);
CREATE TABLE tickets.escalable_known (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    at        timestamptz NOT NULL
);
