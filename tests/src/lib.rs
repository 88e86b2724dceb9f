//! Test harness: starts real peers on loopback (Kamailio, baresip, secsipidx,
//! Knot, PostgreSQL) for the end-to-end tests in `tests/e2e`.
#![warn(missing_docs)]
