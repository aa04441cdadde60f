-- The addresses a service key may be used from: CIDR ranges separated by spaces, checked
-- and normalised before they are stored; NULL means from anywhere.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
