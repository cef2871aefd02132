//! Rampart's tamper-evident audit log.
//!
//! Every audit event is encoded canonically ([`event`]) and appended to segment files
//! in the data dir; an append is acknowledged only once it is on disk (group commit:
//! one `fdatasync` for all appends waiting at that moment). The entries are the leaves
//! of an RFC 9162 Merkle tree ([`merkle`]), whose complete subtrees are kept in memory
//! so that inclusion and consistency proofs take microseconds. Checkpoints (origin,
//! size, root) are signed as C2SP signed notes with Ed25519 ([`note`]), so anyone
//! holding the verifier key can check that history was only ever appended to. With a
//! shared database, [`SharedAuditLog`] keeps the same log there for several instances.

pub mod event;
pub mod export;
mod ledger;
mod log;
pub mod merkle;
pub mod note;
pub mod verify;

pub use export::{AuditTrail, SyslogForwarder};
pub use ledger::{publish_every, Ledger, SharedAuditLog};
pub use log::{
    parse_records, repair, rotate_key, AuditLog, AuditLogError, AuditLogSettings, Entry, Health,
    Parsed, MAX_ENTRY_BYTES,
};
