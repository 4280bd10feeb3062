//! What ingest needs before an event is stored: the event catalog, the body
//! as sent (`wire`), validation against the catalog and the limits, the
//! redaction of sensitive fields, and the description sentence.

pub mod catalog;
pub mod describe;
pub mod redact;
pub mod validate;
pub mod wire;
