-- The Clients list filtered by status and provider together (its two drop-downs): one
-- index range of the pair in the default order, where either index alone left one row
-- in three or four to check (a million clients: 15,000 rows read to count 1,000 with a
-- tag beside them).
CREATE INDEX clients_status_provider ON clients (status, provider, updated_at);
