//! Peer and caller identity: TLS configuration and RFC 5922 certificate checks, RFC 4474 and RFC 8224 signing and verification, certificate fetch and cache.
#![warn(missing_docs)]
