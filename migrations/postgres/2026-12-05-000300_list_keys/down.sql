DROP TRIGGER clients_expiry_sync ON credentials;
DROP FUNCTION clients_expiry_sync();
DROP INDEX clients_list_expiry;
ALTER TABLE clients DROP COLUMN expiry_order;
DROP TRIGGER client_tags_sync ON clients;
DROP FUNCTION client_tags_sync();
DROP FUNCTION client_tag_items(TEXT);
DROP TABLE client_tags;
