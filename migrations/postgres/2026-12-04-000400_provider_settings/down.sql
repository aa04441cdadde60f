DROP TRIGGER provider_settings_invalidate ON provider_settings;
DROP TABLE provider_settings;
