//! The crate's error type.

/// Errors from parsing and validating registry data and federation files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The federation file is not valid TOML for the model.
    #[error("federation file: {source}")]
    Toml {
        /// The parser's error.
        #[from]
        source: toml::de::Error,
    },
    /// Two members share a name.
    #[error("duplicate member {name:?}")]
    DuplicateMember {
        /// The name.
        name: String,
    },
    /// A reference to a member that does not exist.
    #[error("unknown member {name:?}")]
    UnknownMember {
        /// The name.
        name: String,
    },
    /// A member name that is empty or has characters outside `[a-z0-9_.-]`.
    #[error("invalid member name {name:?}")]
    InvalidMemberName {
        /// The name.
        name: String,
    },
    /// A domain claimed by two members.
    #[error("domain {domain:?} claimed by {first:?} and {second:?}")]
    DuplicateDomain {
        /// The domain.
        domain: String,
        /// First member.
        first: String,
        /// Second member.
        second: String,
    },
    /// Not an E.164 number or prefix.
    #[error("invalid E.164 number or prefix {value:?}")]
    InvalidNumber {
        /// The text.
        value: String,
    },
    /// Not `A`, `B` or `C`.
    #[error("invalid attestation level {value:?}")]
    InvalidAttestation {
        /// The text.
        value: String,
    },
    /// Not `block` or `allow`.
    #[error("invalid list kind {value:?}")]
    InvalidListKind {
        /// The text.
        value: String,
    },
    /// A status code outside 400..=699.
    #[error("invalid SIP status {status} for a rejection")]
    InvalidStatus {
        /// The code.
        status: u16,
    },
    /// Two agreements for the same pair.
    #[error("duplicate agreement {from:?} -> {to:?}")]
    DuplicateAgreement {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// A rule in the policy configuration is invalid.
    #[error("invalid {what}: {value:?}")]
    InvalidRule {
        /// Which setting.
        what: &'static str,
        /// The value.
        value: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
