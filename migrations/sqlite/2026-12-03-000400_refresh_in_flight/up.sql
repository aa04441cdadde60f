-- When a refresh call to the provider started and has no recorded outcome yet. Set just
-- before the call, cleared by the write that records its outcome: a value left behind
-- once the lease is over means the process stopped mid-refresh, so whether the provider
-- rotated the refresh token is unknown (the connection says so).
ALTER TABLE credentials ADD COLUMN refresh_started_at TIMESTAMP;
