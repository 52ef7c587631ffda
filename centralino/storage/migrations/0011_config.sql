-- What the administration API manages (centralino/admin/): agents, teams, queues with their
-- routing steps, not-ready reasons. At the first start these tables are seeded from the TOML
-- settings (the bootstrap, recorded in config_seeded); from then on the database wins.
-- Every row carries a `version` for optimistic concurrency: an update names the version it
-- read, and is refused (409) when someone changed the row in between. Every committed change
-- sends NOTIFY config_changes, so every process reloads (NOTIFY is transactional: a rolled
-- back change notifies no one).
CREATE TABLE config_seeded (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seeded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config_teams (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config_agents (
    id          text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    skills      jsonb NOT NULL DEFAULT '{}',  -- skill -> level 1-5
    teams       text[] NOT NULL DEFAULT '{}',
    languages   text[] NOT NULL DEFAULT '{}',
    endpoint    text NOT NULL DEFAULT '',
    wrap_up_s   double precision NOT NULL DEFAULT 10,
    asterisk    text NOT NULL DEFAULT '',
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config_queues (
    name         text PRIMARY KEY,
    skill        text,
    strategy     text NOT NULL,
    steps        jsonb NOT NULL DEFAULT '[]',  -- [{after_s, preferred_only, min_level, action, target}]
    max_length   integer NOT NULL,
    max_wait_s   double precision NOT NULL,
    on_no_agents text NOT NULL,
    sl_target_s  double precision NOT NULL,
    sl_goal      double precision NOT NULL,
    position     integer NOT NULL DEFAULT 0,  -- the order queues are listed and routed in
    version      integer NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config_not_ready_reasons (
    code        text PRIMARY KEY,
    label       text NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
