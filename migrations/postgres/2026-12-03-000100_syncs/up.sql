-- Records synced from providers: one row per connection, model and external id. hash is
-- the SHA-256 of the payload, so a run that finds nothing new writes nothing. id orders
-- the records API's cursor (one sync per connection and model writes at a time).
CREATE TABLE sync_records (
    id BIGSERIAL PRIMARY KEY,
    client_id TEXT NOT NULL,
    model TEXT NOT NULL,
    external_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    hash TEXT NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_modified TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX sync_records_key ON sync_records (client_id, model, external_id);
CREATE INDEX sync_records_listing ON sync_records (client_id, model, id);
CREATE INDEX sync_records_modified ON sync_records (client_id, last_modified);

-- Per connection and model: the checkpoint of the run in progress (JSON), the last run
-- and its outcome, the schedule and the failure streak.
CREATE TABLE sync_states (
    client_id TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    checkpoint TEXT,
    last_started_at TIMESTAMP,
    last_finished_at TIMESTAMP,
    last_success_started_at TIMESTAMP,
    last_outcome TEXT,
    last_duration_ms BIGINT,
    added INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    last_error TEXT,
    next_run_at TIMESTAMP,
    consecutive_failures INTEGER NOT NULL,
    runs_succeeded BIGINT NOT NULL,
    runs_failed BIGINT NOT NULL,
    total_duration_ms BIGINT NOT NULL,
    PRIMARY KEY (client_id, model)
);

-- The external ids a full run has seen so far (it resumes with them after a crash); at
-- its end, stored records not among them are marked deleted and these rows go.
CREATE TABLE sync_seen (
    client_id TEXT NOT NULL,
    model TEXT NOT NULL,
    external_id TEXT NOT NULL,
    PRIMARY KEY (client_id, model, external_id)
);
