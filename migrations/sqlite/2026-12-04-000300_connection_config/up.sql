-- Per-connection settings (a Kustomer org's subdomain, a captured Salesforce instance_url)
-- as sorted JSON text. They are part of a connection's identity: the same account id under
-- two Kustomer orgs is two connections.
ALTER TABLE clients ADD COLUMN connection_config TEXT NOT NULL DEFAULT '{}';
DROP INDEX clients_account;
CREATE UNIQUE INDEX clients_account ON clients
    (provider, provider_account_id, owner_user_id, COALESCE(end_user_id, ''), connection_config);
-- The settings entered before the consent page travel with the pending authorization.
ALTER TABLE oauth_states ADD COLUMN connection_config TEXT NOT NULL DEFAULT '{}';
