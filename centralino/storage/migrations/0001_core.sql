-- Core tables owned by the composition root. Domain tables come in later migrations:
-- 0002_context.sql (customers, identities, interactions, tickets), 0003_acd.sql (queue log).

CREATE TABLE IF NOT EXISTS calls (
    uniqueid    text PRIMARY KEY,
    linkedid    text,
    script      text NOT NULL,
    caller_id   text,
    dnid        text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    outcome     text
);
CREATE INDEX IF NOT EXISTS calls_started_at ON calls (started_at);
