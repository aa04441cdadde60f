-- When a token is due for refreshing, computed once when it is stored (the lifetime and
-- the margin decide it), so the refresher picks exactly what it will refresh.
ALTER TABLE credentials ADD COLUMN refresh_at TIMESTAMP;
UPDATE credentials SET refresh_at = strftime('%Y-%m-%d %H:%M:%f', expires_at, '-300 seconds')
    WHERE expires_at IS NOT NULL;
CREATE INDEX credentials_refresh_at ON credentials (refresh_at);
