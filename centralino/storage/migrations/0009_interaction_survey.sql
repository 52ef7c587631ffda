-- The post-call survey: the caller's 1..5 rating of the conversation, typed after the agent
-- hung up (ivr/flow, `survey` steps). NULL: no survey was asked, or the caller did not answer.
-- The wallboard averages it per team over the agents' answered calls.
ALTER TABLE interactions ADD COLUMN survey_score smallint
    CHECK (survey_score IS NULL OR survey_score BETWEEN 1 AND 5);
CREATE INDEX interactions_survey_recent ON interactions (ended_at)
    WHERE survey_score IS NOT NULL;
