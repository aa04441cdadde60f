DROP INDEX audit_log_target;
CREATE INDEX audit_log_target_id ON audit_log (target_id);
