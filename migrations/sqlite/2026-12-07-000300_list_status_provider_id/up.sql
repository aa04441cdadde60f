-- The status + provider index carries the client id (SQLite has no INCLUDE: a last
-- column), so a bounded count over the pair with a tag beside it reads the index alone and
-- probes client_tags by id.
DROP INDEX clients_status_provider;
CREATE INDEX clients_status_provider ON clients (status, provider, updated_at, id);
