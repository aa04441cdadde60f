DROP TABLE sync_seen;
DROP TABLE sync_states;
DROP TABLE sync_records;
