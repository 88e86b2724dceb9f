//! Peer and caller identity: TLS configuration and RFC 5922 certificate
//! checks, RFC 4474 and RFC 8224 signing and verification, certificate fetch
//! and cache.
//!
//! What it does not do: parse SIP messages (the node hands over header values
//! as plain strings in a [`RequestView`]), decide policy (whether a call must
//! be signed) or answer requests. Every failure is an [`Error`] whose
//! [`Error::status`] is the SIP response to send.
//!
//! ```text
//!            Identity header ──► rfc8224::StirVerifier::prepare ──► cert URL
//!                                                                    │
//!   fetch::CertFetcher (allowlist / local repository, HTTPS, cache) ◄┘
//!                                  │ chain
//!                                  ▼
//!            rfc8224::StirVerifier::verify ──► VerificationResult (standard,
//!                                                 valid or Error, attestation)
//! ```
//!
//! How the node uses it:
//!
//! * TLS: [`tls::TlsSettings::server_config`] / [`tls::TlsSettings::client_config`]
//!   for the listeners and the connector; after an inbound handshake,
//!   [`tls::peer_domains`] + [`rfc5922::match_member`] bind the connection
//!   to a member (no match: 403 or close). Outbound, connect with the
//!   member's domain as the `ServerName`.
//! * Verification: [`classify`] the `Identity` value, then
//!   [`fetch::verify_stir`] or [`fetch::verify_rfc4474`] with a shared
//!   [`fetch::CertFetcher`]; attach the [`VerificationResult`] to the call
//!   and answer failures with [`Error::status`] where policy requires a
//!   valid identity.
//! * Signing: [`rfc8224::StirSigner::sign_shaken`] with
//!   [`passport::new_origid`], or [`rfc4474::Rfc4474Signer::sign`] (add a
//!   Date header first with [`sip_date`]).
//!
//! Signing and verifying a SHAKEN PASSporT with a self-issued key:
//!
//! ```
//! use peering_identity::passport::{Attestation, Signer};
//! use peering_identity::rfc8224::{IdentityHeader, StirSigner};
//! use peering_identity::RequestView;
//!
//! let rng = ring::rand::SystemRandom::new();
//! let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
//!     &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
//! let signer = StirSigner::new(
//!     Signer::from_pkcs8_der(pkcs8.as_ref(), "https://sti.example.net/sp.pem").unwrap());
//! let req = RequestView {
//!     from: "<sip:+12155550100@a.example;user=phone>;tag=1",
//!     to: "<tel:+1-215-555-0101>",
//!     ..RequestView::default()
//! };
//! let value = signer.sign_shaken(&req, Attestation::A, "de305d54-75b4-431b-adb2-eb6b9e546014", 1_700_000_000).unwrap();
//! let header = IdentityHeader::parse(&value).unwrap();
//! assert_eq!(header.ppt.as_deref(), Some("shaken"));
//! assert_eq!(header.info.as_deref(), Some("https://sti.example.net/sp.pem"));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod der;
mod error;
pub mod fetch;
mod keys;
pub(crate) mod modinv;
pub mod p256;
pub mod passport;
mod replay;
pub mod rfc4474;
pub mod rfc5922;
pub mod rfc8224;
pub mod sip;
pub mod sti;
pub mod tls;
mod verify;

pub use error::{CertProblem, Error, ErrorSource, FetchProblem, InfoProblem, Result};
pub use replay::ReplayCache;
pub use verify::{
    RequestView, Standard, VerificationResult, Verified, classify, sip_date, unix_seconds,
};

#[cfg(test)]
mod tests;
