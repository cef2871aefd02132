//! Rampart's config file.
//!
//! [`input`] holds the serde input types (the file as written, with a JSON Schema);
//! [`compile`] turns them into the typed [`Config`] in one step that reports every
//! error at once with its key path and line; [`reference`] renders the config
//! reference from the schema.

mod compile;
mod error;
pub mod input;
mod locate;
pub mod reference;
mod types;

pub use compile::{compile_str, load, ENV_PREFIX, MAX_CONFIG_BYTES};
pub use error::{ConfigError, ConfigErrors};
pub use types::*;

/// The JSON Schema of the config file.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(input::ConfigInput)).unwrap_or_default()
}
