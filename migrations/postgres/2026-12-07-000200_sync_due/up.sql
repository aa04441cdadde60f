-- The scheduler's due syncs (syncs::attention::due) in next-run order, without the paused
-- and running ones; the query repeats the predicate word for word, so both planners match
-- it to this partial index. Without it every pass read all connections (4 s per model at
-- 1,000,000 on PostgreSQL).
CREATE INDEX sync_states_due ON sync_states (model, next_run_at) WHERE status IN ('idle', 'failing');
