-- The Clients search at a million rows (issue 18): pg_trgm GIN indexes serve substring
-- LIKE on the clients' search text and the end users' id and email; the search text is
-- collated "C" so its b-tree serves 1-2 character (prefix) searches too; and indexes
-- match the list's keyset sort orders.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE clients ALTER COLUMN search_text TYPE TEXT COLLATE "C";
CREATE INDEX clients_search_trgm ON clients USING gin (search_text gin_trgm_ops);
CREATE INDEX clients_search_text ON clients (search_text);
CREATE INDEX end_users_external_id_trgm ON end_users USING gin (external_id gin_trgm_ops);
CREATE INDEX end_users_email_trgm ON end_users USING gin (email gin_trgm_ops);
DROP INDEX clients_display_name;
CREATE INDEX clients_list_name ON clients (display_name, id);
CREATE INDEX clients_list_updated ON clients (updated_at DESC, id);
