-- ACD queue log: every routing event, so statistics and wallboards can be rebuilt from it.
-- Agent and team definitions come from configuration (settings TOML); they are not persisted.

CREATE TABLE IF NOT EXISTS queue_log (
    id        bigserial PRIMARY KEY,
    ts        double precision NOT NULL,          -- router clock, epoch seconds
    queue     text NOT NULL DEFAULT '',           -- '' for agent state rows
    item_id   text NOT NULL DEFAULT '',
    event     text NOT NULL CHECK (event IN ('enter', 'offer', 'reject', 'rona', 'connect',
                  'abandon', 'transfer', 'callback', 'overflow', 'complete', 'exit', 'agent')),
    agent_id  text NOT NULL DEFAULT '',
    team      text NOT NULL DEFAULT '',
    wait_s    double precision,
    talk_s    double precision,
    data      text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_log_ts ON queue_log (ts);
CREATE INDEX IF NOT EXISTS queue_log_queue_ts ON queue_log (queue, ts);
CREATE INDEX IF NOT EXISTS queue_log_item ON queue_log (item_id) WHERE item_id <> '';
