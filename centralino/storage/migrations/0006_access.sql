-- Accounts, browser sessions, API tokens and the audit log (centralino/access/policy.py).
-- Secrets are never stored: passwords as argon2id hashes, session ids and API tokens as
-- SHA-256 digests of 256-bit random values.
CREATE TABLE accounts (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL,
    role          text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent_id      text,
    teams         text[] NOT NULL DEFAULT '{}',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz,
    CHECK (role <> 'agent' OR agent_id IS NOT NULL)
);
-- "Anna" and "anna" are one person logging in.
CREATE UNIQUE INDEX accounts_username_key ON accounts (lower(username));
-- One enabled account per agent: the desktop and the audit name one person.
CREATE UNIQUE INDEX accounts_agent_id_key ON accounts (agent_id)
    WHERE agent_id IS NOT NULL AND disabled_at IS NULL;

CREATE TABLE sessions (
    id_digest    bytea PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    remote       text
);
CREATE INDEX sessions_account_idx ON sessions (account_id);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    token_digest bytea NOT NULL UNIQUE,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_account_idx ON api_tokens (account_id);

-- Who did what, when, from where. Append-only by convention; `actor` is the username as it was
-- (kept when the account is gone), NULL for an anonymous request (a failed login).
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text,
    action    text NOT NULL,
    target    text,
    detail    jsonb NOT NULL DEFAULT '{}',
    remote    text
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
