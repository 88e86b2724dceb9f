-- 0000_schema_migrations: the bookkeeping table of applied migrations.
-- The loader runs this file before every migration run (it is idempotent) and
-- never records it; every other file is applied once, in order, and recorded
-- here in the same transaction as its statements.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
