DROP INDEX credentials_refresh_started;
DROP INDEX credentials_lease_until;
DROP INDEX credentials_retry_after;
DROP INDEX credentials_refresh_due;
CREATE INDEX credentials_refresh_at ON credentials (refresh_at);
