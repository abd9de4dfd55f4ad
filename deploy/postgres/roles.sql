-- Least-privilege roles for Mesa. Run as a superuser, then set passwords with psql's
-- \password (it sends a SCRAM-SHA-256 verifier, never the plaintext):
--
--   psql -f deploy/postgres/roles.sql
--   psql -c '\password mesa_monitor'
--   psql -c '\password mesa_admin'

-- Collection: pg_monitor reads pg_stat_activity in full, database sizes and settings.
CREATE ROLE mesa_monitor LOGIN CONNECTION LIMIT 4 IN ROLE pg_monitor;

-- Admin actions (configured as a target's `admin` login):
--   pg_signal_backend  terminate / cancel sessions of non-superusers; PostgreSQL itself
--                      refuses to signal superuser sessions for this role;
--   pg_read_all_stats  see every backend's type, so Mesa can refuse to signal server
--                      processes (Mesa refuses any backend it cannot classify);
--   CREATEROLE         create users; superusers can only be created by a superuser login.
CREATE ROLE mesa_admin LOGIN CONNECTION LIMIT 2 CREATEROLE IN ROLE pg_signal_backend, pg_read_all_stats;
