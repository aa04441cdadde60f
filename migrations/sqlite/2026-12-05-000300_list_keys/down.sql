DROP TRIGGER clients_expiry_delete;
DROP TRIGGER clients_expiry_update;
DROP TRIGGER clients_expiry_insert;
DROP INDEX clients_list_expiry;
ALTER TABLE clients DROP COLUMN expiry_order;
DROP TRIGGER client_tags_delete;
DROP TRIGGER client_tags_update;
DROP TRIGGER client_tags_insert;
DROP TABLE client_tags;
