-- The Clients search at a million rows (issue 18): FTS5 trigram indexes (substring match,
-- case-insensitive) over the clients' search text and the end users' id and email, kept
-- in step by triggers, and indexes matching the list's keyset sort orders.
-- The FTS rowids come from *_search_keys tables with an INTEGER PRIMARY KEY, which VACUUM
-- (and VACUUM INTO, the backup) keeps; the implicit rowid of `clients` it may renumber.
CREATE TABLE clients_search_keys (
    key INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE clients_search USING fts5 (search_text, tokenize = 'trigram');
INSERT INTO clients_search_keys (client_id) SELECT id FROM clients;
INSERT INTO clients_search (rowid, search_text)
    SELECT k.key, c.search_text FROM clients_search_keys k JOIN clients c ON c.id = k.client_id;
CREATE TRIGGER clients_search_insert AFTER INSERT ON clients BEGIN
    INSERT INTO clients_search_keys (client_id) VALUES (new.id);
    INSERT INTO clients_search (rowid, search_text)
        VALUES ((SELECT key FROM clients_search_keys WHERE client_id = new.id), new.search_text);
END;
CREATE TRIGGER clients_search_update AFTER UPDATE OF search_text ON clients
    WHEN old.search_text IS NOT new.search_text BEGIN
    UPDATE clients_search SET search_text = new.search_text
        WHERE rowid = (SELECT key FROM clients_search_keys WHERE client_id = new.id);
END;
CREATE TRIGGER clients_search_delete AFTER DELETE ON clients BEGIN
    DELETE FROM clients_search
        WHERE rowid = (SELECT key FROM clients_search_keys WHERE client_id = old.id);
    DELETE FROM clients_search_keys WHERE client_id = old.id;
END;

CREATE TABLE end_users_search_keys (
    key INTEGER PRIMARY KEY,
    end_user_id TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE end_users_search USING fts5 (external_id, email, tokenize = 'trigram');
INSERT INTO end_users_search_keys (end_user_id) SELECT id FROM end_users;
INSERT INTO end_users_search (rowid, external_id, email)
    SELECT k.key, e.external_id, coalesce(e.email, '')
    FROM end_users_search_keys k JOIN end_users e ON e.id = k.end_user_id;
CREATE TRIGGER end_users_search_insert AFTER INSERT ON end_users BEGIN
    INSERT INTO end_users_search_keys (end_user_id) VALUES (new.id);
    INSERT INTO end_users_search (rowid, external_id, email)
        VALUES ((SELECT key FROM end_users_search_keys WHERE end_user_id = new.id),
                new.external_id, coalesce(new.email, ''));
END;
CREATE TRIGGER end_users_search_update AFTER UPDATE OF external_id, email ON end_users BEGIN
    UPDATE end_users_search SET external_id = new.external_id, email = coalesce(new.email, '')
        WHERE rowid = (SELECT key FROM end_users_search_keys WHERE end_user_id = new.id);
END;
CREATE TRIGGER end_users_search_delete AFTER DELETE ON end_users BEGIN
    DELETE FROM end_users_search
        WHERE rowid = (SELECT key FROM end_users_search_keys WHERE end_user_id = old.id);
    DELETE FROM end_users_search_keys WHERE end_user_id = old.id;
END;

-- Keyset pages: (sort key, id) in the list's order; 1-2 character searches match the
-- start of the search text through clients_search_text.
DROP INDEX clients_display_name;
CREATE INDEX clients_list_name ON clients (display_name, id);
CREATE INDEX clients_list_updated ON clients (updated_at DESC, id);
CREATE INDEX clients_search_text ON clients (search_text);
