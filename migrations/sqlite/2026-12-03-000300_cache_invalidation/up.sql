-- Nothing on SQLite: one SQLite file serves one instance, whose own changes drop its
-- cache entries at once (the PostgreSQL migration of the same name adds NOTIFY triggers).
SELECT 1;
