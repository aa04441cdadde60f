DROP TABLE api_keys;
ALTER TABLE credentials DROP COLUMN retry_after;
