//! Integration tests of the `auditlog` binary: each test runs the real
//! executable in its own temporary directory (one binary, one module per
//! area, as STYLE.md rule 8 asks).

mod accounts;
mod commands;
mod crash;
mod faults;
mod hardening;
mod helpers;
mod index;
mod limits;
mod migrate;
mod pg_cluster;
mod pg_faults;
mod postgres;
mod secrets;
mod serve;
mod tlog;
