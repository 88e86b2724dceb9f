//! The STIR hook: an [`IdentityHook`] that signs each INVITE with a SHAKEN
//! PASSporT (RFC 8224, RFC 8588) using `peering-identity`.

use std::path::Path;

use peering_identity::passport::{Attestation, Claims, Signer, new_origid};
use peering_identity::rfc8224::StirSigner;
use peering_identity::sip::Party;

use crate::error::Error;
use crate::uac::IdentityHook;

/// Signs every INVITE with one ES256 key, attestation A.
#[derive(Debug)]
pub struct StirHook {
    signer: StirSigner,
}

impl StirHook {
    /// Loads a P-256 private key (PEM) announced with certificate URL `x5u`.
    pub fn from_pem_file(key: &Path, x5u: &str) -> Result<Self, Error> {
        let pem = std::fs::read_to_string(key).map_err(|source| Error::Io {
            what: "identity key",
            source,
        })?;
        Ok(Self {
            signer: StirSigner::new(Signer::from_pem(&pem, x5u)?),
        })
    }
}

impl IdentityHook for StirHook {
    fn identity(&self, from: &str, to: &str, now_unix: u64) -> Option<String> {
        let orig = Party::from_header(from)?;
        let dest = Party::from_header(to)?;
        let claims = Claims::shaken(orig, dest, now_unix, Attestation::A, new_origid());
        self.signer.header_for(&claims, false).ok()
    }
}
