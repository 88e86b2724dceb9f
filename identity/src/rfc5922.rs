//! SIP domain identities of a certificate (RFC 5922 section 7.1).
//!
//! ```text
//! 1. subjectAltName URI values with scheme "sip" and no user part give
//!    their host part;
//! 2. subjectAltName dNSName values give the name;
//! 3. only when the certificate has no subjectAltName at all, the subject's
//!    CN is used;
//!    values with a wildcard are never an identity (RFC 5922 section 7.2).
//! ```

use std::collections::BTreeSet;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::error::{CertProblem, Error, Result};

/// The set of SIP domains (lower-case, no trailing dot) a certificate
/// identifies, per RFC 5922. Empty when it identifies none.
pub fn domains(der: &CertificateDer<'_>) -> Result<BTreeSet<String>> {
    let (_, cert) =
        X509Certificate::from_der(der.as_ref()).map_err(|_| Error::from(CertProblem::Malformed))?;
    let mut out = BTreeSet::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|_| Error::from(CertProblem::Malformed))?;
    match san {
        Some(san) => {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => {
                        if let Some(domain) = sip_uri_domain(uri) {
                            out.insert(domain);
                        }
                    }
                    GeneralName::DNSName(dns) => {
                        if let Some(domain) = clean(dns) {
                            out.insert(domain);
                        }
                    }
                    _ => {}
                }
            }
        }
        None => {
            for cn in cert.subject().iter_common_name() {
                if let Some(domain) = cn.as_str().ok().and_then(clean) {
                    out.insert(domain);
                }
            }
        }
    }
    Ok(out)
}

/// The domain of a `sip:` URI without user part (`sip:example.com`), else `None`.
fn sip_uri_domain(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") || rest.contains('@') {
        return None;
    }
    let host = rest.split([';', '?']).next()?;
    // Drop a port; IPv6 references are not domains.
    if host.starts_with('[') {
        return None;
    }
    let host = host.split(':').next()?;
    clean(host)
}

fn clean(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.');
    if name.is_empty()
        || name.contains('*')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// The first of a member's registered domains that the peer's certificate
/// identifies (case-insensitive, trailing dots ignored), if any.
pub fn match_member<'a, I, S>(peer: &BTreeSet<String>, registered: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + ?Sized + 'a,
{
    registered.into_iter().map(AsRef::as_ref).find(|d| {
        let d = d.trim_end_matches('.');
        peer.iter().any(|p| p.eq_ignore_ascii_case(d))
    })
}
