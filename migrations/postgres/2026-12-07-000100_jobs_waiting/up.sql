-- The worker's take walks these in order and stops at its batch: waiting jobs by run_at,
-- running ones by lease end (lapsed leases). The take's conditions repeat these
-- predicates word for word, so both planners match them to the partial indexes.
CREATE INDEX jobs_waiting ON jobs (run_at, id) WHERE state IN ('queued', 'failed');
CREATE INDEX jobs_leased ON jobs (lease_until, id) WHERE state = 'running';
