ALTER TABLE credentials DROP COLUMN refresh_started_at;
