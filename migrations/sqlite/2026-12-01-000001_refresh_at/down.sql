DROP INDEX credentials_refresh_at;
ALTER TABLE credentials DROP COLUMN refresh_at;
