-- The Clients list at a million rows (issue 18), the parts the first indexes missed:
-- 1. client_tags: one row per (tag, client), kept by a trigger from clients.tags (a JSON
--    array), so the tag filter is an index range instead of a LIKE over every row.
-- 2. clients.expiry_order: the token expiry of the client's credentials (or, with none,
--    a far-future stand-in so those sort last), kept by a trigger on credentials, so the
--    expires sort walks an index and pages by keyset like the other sorts.
CREATE TABLE client_tags (
    tag TEXT COLLATE "C" NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, client_id)
);
CREATE INDEX client_tags_client ON client_tags (client_id);

-- The text items of a tags value; nothing (not an error) for one that is not a JSON array.
CREATE FUNCTION client_tag_items(tags TEXT) RETURNS SETOF TEXT LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN QUERY SELECT DISTINCT item FROM json_array_elements_text(tags::json) item;
EXCEPTION WHEN others THEN
    RETURN;
END $$;

INSERT INTO client_tags (tag, client_id)
    SELECT item, c.id FROM clients c, client_tag_items(c.tags) item ON CONFLICT DO NOTHING;

CREATE FUNCTION client_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.tags IS NOT DISTINCT FROM OLD.tags THEN
            RETURN NULL;
        END IF;
        DELETE FROM client_tags WHERE client_id = NEW.id;
    END IF;
    INSERT INTO client_tags (tag, client_id)
        SELECT item, NEW.id FROM client_tag_items(NEW.tags) item ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER client_tags_sync AFTER INSERT OR UPDATE OF tags ON clients
    FOR EACH ROW EXECUTE FUNCTION client_tags_sync();

ALTER TABLE clients ADD COLUMN expiry_order TIMESTAMP NOT NULL DEFAULT '9999-12-31 23:59:59';
UPDATE clients c SET expiry_order = cr.expires_at
    FROM credentials cr WHERE cr.client_id = c.id AND cr.expires_at IS NOT NULL;
CREATE INDEX clients_list_expiry ON clients (expiry_order, id);

CREATE FUNCTION clients_expiry_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE clients SET expiry_order = '9999-12-31 23:59:59' WHERE id = OLD.client_id;
    ELSIF TG_OP = 'INSERT' OR NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
        UPDATE clients SET expiry_order = coalesce(NEW.expires_at, '9999-12-31 23:59:59')
            WHERE id = NEW.client_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER clients_expiry_sync AFTER INSERT OR DELETE OR UPDATE OF expires_at ON credentials
    FOR EACH ROW EXECUTE FUNCTION clients_expiry_sync();
