-- Basic connections cannot be kept under the old CHECK; they go with their credentials.
DELETE FROM credentials WHERE client_id IN (SELECT id FROM clients WHERE auth_type = 'basic');
DELETE FROM clients WHERE auth_type = 'basic';
ALTER TABLE clients DROP CONSTRAINT clients_auth_type_check;
ALTER TABLE clients ADD CONSTRAINT clients_auth_type_check
    CHECK (auth_type IN ('oauth2', 'api_key', 'client_credentials'));
