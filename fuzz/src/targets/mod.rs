pub mod config;
pub mod expr;
pub mod json_log;
pub mod peer;
pub mod stat_name;
