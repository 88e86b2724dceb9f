//! The crate's error type.

/// What can go wrong setting up or running the load generator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The callee numbers specification is invalid.
    #[error("callee numbers: {reason}")]
    Numbers {
        /// Why.
        reason: &'static str,
    },
    /// TLS material or configuration is unusable.
    #[error("TLS ({what}): {reason}")]
    Tls {
        /// Which file or step.
        what: String,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The STIR signing key is unusable.
    #[error("identity: {0}")]
    Identity(#[from] peering_identity::Error),
    /// A command-line value is invalid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which option.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
}
