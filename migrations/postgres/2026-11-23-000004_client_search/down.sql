DROP INDEX clients_display_name;
DROP INDEX clients_provider;
DROP INDEX clients_status;
ALTER TABLE clients DROP COLUMN search_text;
