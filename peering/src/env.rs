//! Deployment knobs read from the environment, declared in one place and
//! read through [`Strings`] so that tests never mutate the process
//! environment.

/// Path of the configuration file when `--config` is not given.
pub const ENV_CONFIG: &str = "PEERING_CONFIG";
/// PostgreSQL URL of the shared store (overrides the file).
pub const ENV_DATABASE_URL: &str = "PEERING_DATABASE_URL";

/// A source of named strings.
pub trait Strings {
    /// The value of `name`, if set and valid UTF-8.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Strings for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Strings for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}
