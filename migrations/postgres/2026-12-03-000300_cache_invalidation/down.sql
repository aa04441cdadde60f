DROP TRIGGER api_keys_invalidate_delete ON api_keys;
DROP TRIGGER api_keys_invalidate_update ON api_keys;
DROP TRIGGER credentials_invalidate_delete ON credentials;
DROP TRIGGER credentials_invalidate_update ON credentials;
DROP TRIGGER clients_invalidate_delete ON clients;
DROP TRIGGER clients_invalidate_update ON clients;
DROP FUNCTION connecthub_notify_invalidate();
