//! auditlog-server
