-- The agent desktop: the outcome an agent chose in wrap-up, on the call's interaction record,
-- and notes agents write on a call or a customer (shown on the desktop's timeline).
ALTER TABLE interactions ADD COLUMN wrap_up_code text;
ALTER TABLE interactions ADD COLUMN wrap_up_by text;
ALTER TABLE interactions ADD COLUMN wrap_up_at timestamptz;

CREATE TABLE desk_notes (
    id           bigserial PRIMARY KEY,
    customer_id  bigint REFERENCES customers (id),
    linkedid     text,
    agent_id     text NOT NULL,
    author       text NOT NULL,
    body         text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (customer_id IS NOT NULL OR linkedid IS NOT NULL)
);
CREATE INDEX desk_notes_customer ON desk_notes (customer_id, created_at DESC);
CREATE INDEX desk_notes_linkedid ON desk_notes (linkedid, created_at DESC);
