-- Migration history starts here. Domain tables come in the migrations after this one:
-- 0002_context.sql (customers, identities, links, interactions, tickets), 0003_acd.sql (queue
-- log). Nothing in Redis must last: everything that does is in one of these tables.
SELECT 1;
