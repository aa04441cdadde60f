-- The job queue: one row per unit of background work (webhook deliveries now, syncs next).
-- state: queued (waiting for run_at) | running (leased by locked_by until lease_until) |
-- failed (an attempt failed, the retry waits for run_at) | done | dead (no attempt left,
-- or cancelled). queue_key: jobs sharing one run one at a time, oldest first.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    queue_key TEXT,
    state TEXT NOT NULL,
    run_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    lease_until TIMESTAMP,
    locked_by TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_queue_key ON jobs (queue_key, state);
CREATE INDEX jobs_updated_at ON jobs (updated_at);
