DELETE FROM clients WHERE end_user_id IS NOT NULL;
DROP INDEX clients_end_user;
DROP INDEX clients_account;
ALTER TABLE clients ADD CONSTRAINT clients_provider_provider_account_id_owner_user_id_key
    UNIQUE (provider, provider_account_id, owner_user_id);
ALTER TABLE clients DROP COLUMN end_user_id;
DROP TABLE connect_settings;
DROP TABLE connect_sessions;
DROP TABLE end_users;
