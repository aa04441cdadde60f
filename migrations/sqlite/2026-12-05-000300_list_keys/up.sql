-- The Clients list at a million rows (issue 18), the parts the first indexes missed:
-- 1. client_tags: one row per (tag, client), kept by triggers from clients.tags (a JSON
--    array), so the tag filter is an index range instead of a LIKE over every row.
-- 2. clients.expiry_order: the token expiry of the client's credentials (or, with none,
--    a far-future stand-in so those sort last), kept by triggers on credentials, so the
--    expires sort walks an index and pages by keyset like the other sorts.
CREATE TABLE client_tags (
    tag TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (tag, client_id)
) WITHOUT ROWID;
CREATE INDEX client_tags_client ON client_tags (client_id);
INSERT OR IGNORE INTO client_tags (tag, client_id)
    SELECT j.value, c.id FROM clients c,
        json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) j
    WHERE j.type = 'text';
CREATE TRIGGER client_tags_insert AFTER INSERT ON clients BEGIN
    INSERT OR IGNORE INTO client_tags (tag, client_id)
        SELECT j.value, new.id
        FROM json_each(CASE WHEN json_valid(new.tags) THEN new.tags ELSE '[]' END) j
        WHERE j.type = 'text';
END;
CREATE TRIGGER client_tags_update AFTER UPDATE OF tags ON clients
    WHEN old.tags IS NOT new.tags BEGIN
    DELETE FROM client_tags WHERE client_id = new.id;
    INSERT OR IGNORE INTO client_tags (tag, client_id)
        SELECT j.value, new.id
        FROM json_each(CASE WHEN json_valid(new.tags) THEN new.tags ELSE '[]' END) j
        WHERE j.type = 'text';
END;
CREATE TRIGGER client_tags_delete AFTER DELETE ON clients BEGIN
    DELETE FROM client_tags WHERE client_id = old.id;
END;

-- The stand-in is written as diesel writes a timestamp, so it compares as text like the
-- real ones and reads back as 9999-12-31 23:59:59.
ALTER TABLE clients ADD COLUMN expiry_order TIMESTAMP NOT NULL DEFAULT '9999-12-31 23:59:59';
UPDATE clients SET expiry_order = (SELECT cr.expires_at FROM credentials cr WHERE cr.client_id = clients.id)
    WHERE EXISTS (SELECT 1 FROM credentials cr WHERE cr.client_id = clients.id AND cr.expires_at IS NOT NULL);
CREATE INDEX clients_list_expiry ON clients (expiry_order, id);
CREATE TRIGGER clients_expiry_insert AFTER INSERT ON credentials BEGIN
    UPDATE clients SET expiry_order = coalesce(new.expires_at, '9999-12-31 23:59:59')
        WHERE id = new.client_id;
END;
CREATE TRIGGER clients_expiry_update AFTER UPDATE OF expires_at ON credentials
    WHEN old.expires_at IS NOT new.expires_at BEGIN
    UPDATE clients SET expiry_order = coalesce(new.expires_at, '9999-12-31 23:59:59')
        WHERE id = new.client_id;
END;
CREATE TRIGGER clients_expiry_delete AFTER DELETE ON credentials BEGIN
    UPDATE clients SET expiry_order = '9999-12-31 23:59:59' WHERE id = old.client_id;
END;
