DROP INDEX clients_status_provider;
CREATE INDEX clients_status_provider ON clients (status, provider, updated_at);
