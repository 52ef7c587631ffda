-- Messages on the written channels (WhatsApp, SMS; email and chat later), beside calls on the
-- customer's timeline: each message has its interaction row (channel, direction, time, text),
-- and this table keeps what the provider said about it. (channel, provider_message_id) is
-- unique: a provider's retry of a webhook is recognised and never stored twice.
CREATE TABLE IF NOT EXISTS messages (
    id                      bigserial PRIMARY KEY,
    channel                 text NOT NULL CHECK (channel IN ('whatsapp', 'sms', 'email', 'chat')),
    direction               text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    provider_message_id     text NOT NULL,
    sender                  text NOT NULL,
    recipient               text NOT NULL,
    body                    text NOT NULL DEFAULT '',
    provider_time           timestamptz,
    received_at             timestamptz NOT NULL DEFAULT now(),
    raw                     jsonb NOT NULL,
    interaction_id          bigint REFERENCES interactions (id),
    -- How the sender resolved: found, not_found (a customer was created), ambiguous (the
    -- candidates are listed, none is guessed), no_identity (e.g. an alphanumeric SMS sender).
    resolution              text CHECK (resolution IN ('found', 'not_found', 'ambiguous', 'no_identity')),
    candidate_customer_ids  bigint[] NOT NULL DEFAULT '{}',
    -- Outbound only: the furthest state the provider's callbacks reported (context/messages.py).
    delivery_state          text CHECK (delivery_state IN ('queued', 'sent', 'failed', 'delivered', 'read')),
    delivery_updated_at     timestamptz,
    delivery_error          text NOT NULL DEFAULT '',
    -- Written by a person, or an auto-reply / bounce (kept, marked, never routed).
    kind                    text NOT NULL DEFAULT 'message'
                            CHECK (kind IN ('message', 'auto_reply', 'bounce')),
    -- Email: the provider id (Message-ID) of the first message of its thread.
    thread_id               text,
    CONSTRAINT messages_provider_id UNIQUE (channel, provider_message_id)
);
CREATE INDEX IF NOT EXISTS messages_interaction ON messages (interaction_id);

-- Attachments of inbound email, each within the parser's size limit (centralino/channels).
CREATE TABLE IF NOT EXISTS message_attachments (
    id            bigserial PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages (id),
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    integer NOT NULL,
    content       bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS message_attachments_message ON message_attachments (message_id);

-- Every status callback, once each (providers repeat them): a status for a message not yet
-- recorded (the callback overtook our own write) is applied when the message is recorded.
CREATE TABLE IF NOT EXISTS message_status_events (
    id                   bigserial PRIMARY KEY,
    channel              text NOT NULL,
    provider_message_id  text NOT NULL,
    state                text NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'delivered', 'read')),
    provider_time        timestamptz,
    received_at          timestamptz NOT NULL DEFAULT now(),
    error                text NOT NULL DEFAULT '',
    raw                  jsonb NOT NULL,
    CONSTRAINT message_status_events_once UNIQUE (channel, provider_message_id, state)
);

-- Stores one inbound message in one round trip (the webhook's answer waits for it): the
-- message, unless already stored; its sender resolved to a customer exactly as
-- ContextService.resolve does (the identity or its phone/WhatsApp twin, merged-away customers
-- skipped; one → found, none → a new customer, several → ambiguous, never guessed); and its
-- interaction on the timeline. Two messages from one new sender create one customer: the
-- advisory lock on the sender's key (the same for an identity and its twin) serialises them,
-- so a provider's retry finds the customer its original created. The interaction's unique
-- record key is where a retry is recognised (a concurrent one waits for the original's commit,
-- then inserts nothing); the message's unique (channel, id) stays as the last word. The
-- interaction is written first and the message once, whole (an UPDATE of the message row
-- would rewrite it and all its indexes).
CREATE OR REPLACE FUNCTION centralino_store_inbound_message(
    p_channel text,
    p_provider_id text,
    p_sender text,
    p_recipient text,
    p_body text,
    p_provider_time timestamptz,
    p_raw jsonb,
    p_identity_kind text,
    p_identity_value text,
    p_lookup_kinds text[],
    p_lookup_values text[],
    p_lock_key text,
    p_display_name text,
    p_kind text,
    p_create_customer boolean,
    p_references text[]
) RETURNS TABLE (
    o_message_id bigint,
    o_duplicate boolean,
    o_resolution text,
    o_customer_id bigint,
    o_candidates bigint[],
    o_thread_id text
) LANGUAGE plpgsql AS $$
DECLARE
    v_thread text;
    v_found bigint[] := '{}';
    v_customer bigint;
    v_resolution text;
    v_interaction bigint;
    v_id bigint;
    v_time timestamptz := coalesce(p_provider_time, now());
BEGIN
    IF p_lock_key = '' THEN
        v_resolution := 'no_identity';
    ELSE
        PERFORM pg_advisory_xact_lock(hashtextextended('centralino.identity:' || p_lock_key, 0));
        SELECT coalesce(array_agg(DISTINCT c.id ORDER BY c.id), '{}') INTO v_found
        FROM unnest(p_lookup_kinds, p_lookup_values) AS k (kind, value)
        JOIN customer_identities ci ON ci.kind = k.kind AND ci.value = k.value
        JOIN customers c ON c.id = ci.customer_id
        WHERE c.merged_into IS NULL;
        IF cardinality(v_found) = 0 AND NOT p_create_customer THEN
            v_resolution := 'not_found';  -- automated mail: reported, no customer created
        ELSIF cardinality(v_found) = 0 THEN
            INSERT INTO customers (display_name) VALUES (p_display_name) RETURNING id INTO v_customer;
            INSERT INTO customer_identities (customer_id, kind, value)
            VALUES (v_customer, p_identity_kind, p_identity_value);
            v_resolution := 'not_found';
        ELSIF cardinality(v_found) = 1 THEN
            v_customer := v_found[1];
            v_resolution := 'found';
        ELSE
            v_resolution := 'ambiguous';
        END IF;
    END IF;
    IF v_resolution <> 'ambiguous' THEN
        v_found := '{}';
    END IF;
    -- A reply joins the thread of the earliest message it references that we know.
    IF cardinality(p_references) > 0 THEN
        SELECT coalesce(m.thread_id, m.provider_message_id) INTO v_thread
        FROM messages m
        WHERE m.channel = p_channel AND m.provider_message_id = ANY(p_references)
        ORDER BY m.id LIMIT 1;
    END IF;
    IF p_channel = 'email' THEN
        v_thread := coalesce(v_thread, p_provider_id);
    END IF;
    -- The interaction's record key is the message's: a delivery already stored (or being
    -- stored by a concurrent retry, whose commit this waits for) inserts nothing here.
    INSERT INTO interactions (customer_id, channel, direction, identity_kind, identity_value,
                              summary, started_at, ended_at, record_key)
    VALUES (v_customer, p_channel, 'inbound', nullif(p_identity_kind, ''),
            nullif(p_identity_value, ''), p_body, v_time, v_time,
            'message:' || p_channel || ':' || p_provider_id)
    ON CONFLICT (record_key) DO NOTHING
    RETURNING id INTO v_interaction;
    IF v_interaction IS NULL THEN
        RETURN QUERY
            SELECT m.id, true, m.resolution, i.customer_id, m.candidate_customer_ids, m.thread_id
            FROM messages m LEFT JOIN interactions i ON i.id = m.interaction_id
            WHERE m.channel = p_channel AND m.provider_message_id = p_provider_id;
        RETURN;
    END IF;
    INSERT INTO messages (channel, direction, provider_message_id, sender, recipient, body,
                          provider_time, raw, interaction_id, resolution, candidate_customer_ids,
                          kind, thread_id)
    VALUES (p_channel, 'inbound', p_provider_id, p_sender, p_recipient, p_body,
            p_provider_time, p_raw, v_interaction, v_resolution, v_found, p_kind, v_thread)
    RETURNING id INTO v_id;
    RETURN QUERY SELECT v_id, false, v_resolution, v_customer, v_found, v_thread;
END
$$;

-- Replies we were asked to send, once per idempotency key (the desktop's double click, a
-- client's retry): only the request that moves a key from pending to sending calls the
-- provider; the others see its state. `accepted` carries the provider's message id, whose
-- `messages` row (direction outbound) follows its delivery state.
CREATE TABLE IF NOT EXISTS outbound_requests (
    idempotency_key      text PRIMARY KEY,
    channel              text NOT NULL CHECK (channel IN ('whatsapp', 'sms')),
    customer_id          bigint REFERENCES customers (id),
    recipient            text NOT NULL,
    body                 text NOT NULL,
    state                text NOT NULL CHECK (state IN ('sending', 'accepted', 'failed')),
    attempts             integer NOT NULL DEFAULT 0,
    provider_message_id  text,
    last_error           text NOT NULL DEFAULT '',
    requested_at         timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Conversations on the written channels: the first message of a contact opens one, which the
-- ACD routes to an agent (channel capacity, skills); later messages of the same contact on the
-- same channel join it until the agent closes it. One open conversation per (channel, contact).
CREATE TABLE IF NOT EXISTS conversations (
    id           bigserial PRIMARY KEY,
    channel      text NOT NULL CHECK (channel IN ('whatsapp', 'sms', 'email', 'chat')),
    contact      text NOT NULL,
    customer_id  bigint REFERENCES customers (id),
    queue        text NOT NULL,
    state        text NOT NULL CHECK (state IN ('queued', 'assigned', 'closed')),
    agent_id     text,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    assigned_at  timestamptz,
    closed_at    timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS conversations_one_open
    ON conversations (channel, contact) WHERE state <> 'closed';
ALTER TABLE messages ADD COLUMN IF NOT EXISTS conversation_id bigint REFERENCES conversations (id);

-- The kanban board: which team's board a ticket is on, who owns it, where it came from.
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS team text NOT NULL DEFAULT '';
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT '';
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS channel text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS tickets_board ON tickets (team, pipeline) WHERE closed_at IS NULL;
