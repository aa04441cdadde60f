DROP INDEX clients_account;
CREATE UNIQUE INDEX clients_account ON clients
    (provider, provider_account_id, owner_user_id, COALESCE(end_user_id, ''));
ALTER TABLE clients DROP COLUMN connection_config;
ALTER TABLE oauth_states DROP COLUMN connection_config;
