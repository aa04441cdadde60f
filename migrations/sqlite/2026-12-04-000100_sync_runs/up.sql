-- One row per finished sync run, so the usage page's success rate and mean duration are
-- over its period (the all-time totals on sync_states go). Kept as long as API usage.
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    model TEXT NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    succeeded BOOLEAN NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX sync_runs_finished ON sync_runs (finished_at);
ALTER TABLE sync_states DROP COLUMN runs_succeeded;
ALTER TABLE sync_states DROP COLUMN runs_failed;
ALTER TABLE sync_states DROP COLUMN total_duration_ms;
