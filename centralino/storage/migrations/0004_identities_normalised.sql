-- Identities are stored normalised per kind (context/identity.py): WhatsApp ids as the Cloud
-- API's wa_id (digits, no '+'), emails trimmed and lower-cased. Rows written before that are
-- brought in line; where the normalised twin exists already, the twin keeps the link.
INSERT INTO customer_identities (customer_id, kind, value, created_at)
SELECT customer_id, kind, ltrim(btrim(value), '+'), created_at
FROM customer_identities
WHERE kind = 'whatsapp' AND value <> ltrim(btrim(value), '+')
ON CONFLICT DO NOTHING;
DELETE FROM customer_identities
WHERE kind = 'whatsapp' AND value <> ltrim(btrim(value), '+');

INSERT INTO customer_identities (customer_id, kind, value, created_at)
SELECT customer_id, kind, lower(btrim(value)), created_at
FROM customer_identities
WHERE kind = 'email' AND value <> lower(btrim(value))
ON CONFLICT DO NOTHING;
DELETE FROM customer_identities
WHERE kind = 'email' AND value <> lower(btrim(value));
