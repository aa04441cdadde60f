DROP TABLE synced_conversations;
