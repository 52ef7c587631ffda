-- Reports (centralino/adapters/pg_reports.py) read a period's calls by when they entered a queue,
-- then every row of those calls; and the survey scores of the interactions started in it.
CREATE INDEX IF NOT EXISTS queue_log_enter_ts ON queue_log (ts, item_id) WHERE event = 'enter';
CREATE INDEX IF NOT EXISTS queue_log_agent_ts ON queue_log (ts) WHERE event = 'agent';
CREATE INDEX IF NOT EXISTS interactions_survey_started ON interactions (started_at)
    WHERE survey_score IS NOT NULL;
