//! The federation's storage: one Store interface over PostgreSQL and an embedded SQLite default, with the schema from migrations/.
#![warn(missing_docs)]
