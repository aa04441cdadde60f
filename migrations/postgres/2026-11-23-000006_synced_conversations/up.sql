-- Kustomer conversations created for a caller's own record (a chat session, say), so a
-- repeat with the same external_id answers the existing conversation instead of creating
-- a second one. The row is written before Kustomer is called (conversation_id NULL while
-- the call runs): the primary key lets exactly one of two racing requests create it.
CREATE TABLE synced_conversations (
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    conversation_id TEXT,
    customer_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, external_id)
);
