DROP INDEX clients_list_updated;
DROP INDEX clients_list_name;
CREATE INDEX clients_display_name ON clients (display_name);
DROP INDEX end_users_email_trgm;
DROP INDEX end_users_external_id_trgm;
DROP INDEX clients_search_text;
DROP INDEX clients_search_trgm;
ALTER TABLE clients ALTER COLUMN search_text TYPE TEXT COLLATE "default";
