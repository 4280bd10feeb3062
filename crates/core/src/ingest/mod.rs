//! What ingest needs before an event is stored: the event catalog, the body
//! as sent (`wire`), its limits (`limits`), validation against the catalog,
//! the redaction of sensitive fields, and the description sentence.

pub mod catalog;
pub mod describe;
pub mod limits;
pub mod redact;
pub mod validate;
pub mod wire;
