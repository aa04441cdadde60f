DROP INDEX jobs_leased;
DROP INDEX jobs_waiting;
