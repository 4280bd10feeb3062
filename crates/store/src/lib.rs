//! auditlog-store
