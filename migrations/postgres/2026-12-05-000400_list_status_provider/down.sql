DROP INDEX clients_status_provider;
