DROP TABLE credentials;
DROP TABLE clients;
DROP TABLE oauth_states;
