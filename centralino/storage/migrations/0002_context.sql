-- The customer context: only what Centralino owns. ERP/CRM data is never copied here; it is
-- fetched just in time. `external_links` says where a customer lives in those systems.

CREATE TABLE IF NOT EXISTS customers (
    id            bigserial PRIMARY KEY,
    display_name  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    merged_into   bigint REFERENCES customers (id),
    merged_at     timestamptz
);

-- One identity may belong to several customers (a shared office number): resolution reports
-- that as ambiguous, so (kind, value) is deliberately not unique on its own.
CREATE TABLE IF NOT EXISTS customer_identities (
    customer_id  bigint NOT NULL REFERENCES customers (id),
    kind         text NOT NULL CHECK (kind IN ('phone', 'email', 'chat', 'whatsapp')),
    value        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value, customer_id)
);
CREATE INDEX IF NOT EXISTS customer_identities_customer ON customer_identities (customer_id);

CREATE TABLE IF NOT EXISTS external_links (
    customer_id  bigint NOT NULL REFERENCES customers (id),
    system       text NOT NULL,
    external_id  text NOT NULL,
    PRIMARY KEY (customer_id, system, external_id)
);
CREATE INDEX IF NOT EXISTS external_links_lookup ON external_links (system, external_id);

CREATE TABLE IF NOT EXISTS tickets (
    id           bigserial PRIMARY KEY,
    customer_id  bigint REFERENCES customers (id),
    title        text NOT NULL,
    pipeline     text NOT NULL,
    phase        text NOT NULL,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    closed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS tickets_open_by_customer ON tickets (customer_id) WHERE closed_at IS NULL;

-- Every phase a ticket went through: one row per activity, out-of-order moves flagged.
CREATE TABLE IF NOT EXISTS ticket_phase_history (
    id            bigserial PRIMARY KEY,
    ticket_id     bigint NOT NULL REFERENCES tickets (id),
    phase         text NOT NULL,
    from_phase    text,
    opened_at     timestamptz NOT NULL,
    closed_at     timestamptz,
    out_of_order  boolean NOT NULL DEFAULT false,
    actor         text NOT NULL,
    reason        text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ticket_phase_history_ticket ON ticket_phase_history (ticket_id, id);
-- At most one open activity per ticket.
CREATE UNIQUE INDEX IF NOT EXISTS ticket_phase_history_one_open
    ON ticket_phase_history (ticket_id) WHERE closed_at IS NULL;

-- Interactions on every channel: the customer's timeline. For calls, pop_* and ring_at prove
-- the screen-pop reached the agent's desktop before the phone rang.
CREATE TABLE IF NOT EXISTS interactions (
    id                    bigserial PRIMARY KEY,
    customer_id           bigint REFERENCES customers (id),
    original_customer_id  bigint REFERENCES customers (id),
    channel               text NOT NULL CHECK (channel IN ('voice', 'email', 'chat', 'whatsapp', 'sms')),
    direction             text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    identity_kind         text,
    identity_value        text,
    linkedid              text,
    agent_id              text,
    queue                 text,
    intent                text,
    outcome               text,
    summary               text NOT NULL DEFAULT '',
    transcript            text NOT NULL DEFAULT '',
    wait_s                double precision,
    talk_s                double precision,
    started_at            timestamptz NOT NULL,
    ended_at              timestamptz,
    pop_pushed_at         timestamptz,
    pop_acked_at          timestamptz,
    ring_at               timestamptz,
    ticket_id             bigint REFERENCES tickets (id)
);
CREATE INDEX IF NOT EXISTS interactions_timeline ON interactions (customer_id, started_at DESC);
CREATE INDEX IF NOT EXISTS interactions_linkedid ON interactions (linkedid);
