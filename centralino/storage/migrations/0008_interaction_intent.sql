-- The IVR's intent on the call's record: how sure it was and why (the transcript already has a
-- column). Reasons are short sentences ("2 overdue invoice(s) → billing", "pressed 3 (...)").
-- Older rows: no confidence, no reasons.
ALTER TABLE interactions ADD COLUMN intent_confidence double precision;
ALTER TABLE interactions ADD COLUMN intent_reasons text[] NOT NULL DEFAULT '{}';
