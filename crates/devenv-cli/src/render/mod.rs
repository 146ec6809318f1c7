//! Turning API messages into text and JSON for people and scripts.

pub mod color;
pub mod config_errors;
pub mod logs;
pub mod progress;
pub mod status;
pub mod table;
pub mod time;
