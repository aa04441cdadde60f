DROP INDEX sync_states_due;
