-- HTTP Basic connections (auth_type 'basic').
ALTER TABLE clients DROP CONSTRAINT clients_auth_type_check;
ALTER TABLE clients ADD CONSTRAINT clients_auth_type_check
    CHECK (auth_type IN ('oauth2', 'api_key', 'client_credentials', 'basic'));
