-- What the Clients search box matches (lowercased name, account id, email domain), and
-- indexes for the list's filters and sort orders.
ALTER TABLE clients ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE clients SET search_text = lower(display_name || ' ' || provider_account_id);
CREATE INDEX clients_status ON clients (status, updated_at);
CREATE INDEX clients_provider ON clients (provider, updated_at);
CREATE INDEX clients_display_name ON clients (display_name);
