//! PASSporT (RFC 8225) with the SHAKEN extension (RFC 8588): JWS compact
//! serialisation, ES256 signing and signature verification.
//!
//! ```text
//! PASSporT = BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(signature)
//! header   = {"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://..."}
//! claims   = {"attest":"A","dest":{"tn":["12155550131"]},"iat":1443208345,
//!             "orig":{"tn":"12155550121"},"origid":"123e4567-e89b-12d3-a456-426655440000"}
//! ```
//!
//! JSON is produced in the canonical form of RFC 8225 section 9 (keys in
//! lexicographic order, no white space), which is also what a verifier
//! rebuilds for the compact form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::sip::Party;

/// The only algorithm STIR/SHAKEN uses (RFC 8225 section 8, RFC 8588).
pub const ES256: &str = "ES256";
/// The `ppt` value of SHAKEN (RFC 8588).
pub const PPT_SHAKEN: &str = "shaken";

/// SHAKEN attestation level (RFC 8588 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attestation {
    /// Full attestation: the signer knows the customer and its right to the number.
    A,
    /// Partial attestation: the customer is known, the number is not verified.
    B,
    /// Gateway attestation: the signer only saw the call enter its network.
    C,
}

impl Attestation {
    /// The claim value (`"A"`, `"B"`, `"C"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// Parses a claim value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            "C" => Some(Self::C),
            _ => None,
        }
    }
}

/// The claims of a PASSporT (RFC 8225 section 5, RFC 8588 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The originating identity (`orig`).
    pub orig: Party,
    /// The destination identities (`dest`), at least one.
    pub dest: Vec<Party>,
    /// Issued-at time, seconds since the UNIX epoch (`iat`).
    pub iat: u64,
    /// SHAKEN attestation (`attest`); present exactly when `ppt` is `shaken`.
    pub attest: Option<Attestation>,
    /// SHAKEN origination identifier (`origid`), a UUID.
    pub origid: Option<String>,
}

impl Claims {
    /// SHAKEN claims for a call from `orig` to `dest` (header values or URIs).
    pub fn shaken(
        orig: Party,
        dest: Party,
        iat: u64,
        attest: Attestation,
        origid: impl Into<String>,
    ) -> Self {
        Self {
            orig,
            dest: vec![dest],
            iat,
            attest: Some(attest),
            origid: Some(origid.into()),
        }
    }

    /// The canonical JSON (RFC 8225 section 9: sorted keys, no white space).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push('{');
        if let Some(attest) = self.attest {
            push_member(&mut out, "attest", &json_str(attest.as_str()));
        }
        let tns: Vec<String> = self
            .dest
            .iter()
            .filter_map(|d| d.tn().map(json_str))
            .collect();
        let uris: Vec<String> = self
            .dest
            .iter()
            .filter_map(|d| match d {
                Party::Uri(u) => Some(json_str(u)),
                Party::Tn(_) => None,
            })
            .collect();
        let mut dest = String::from("{");
        if !tns.is_empty() {
            push_member(&mut dest, "tn", &format!("[{}]", tns.join(",")));
        }
        if !uris.is_empty() {
            push_member(&mut dest, "uri", &format!("[{}]", uris.join(",")));
        }
        dest.push('}');
        push_member(&mut out, "dest", &dest);
        push_member(&mut out, "iat", &self.iat.to_string());
        let orig = match &self.orig {
            Party::Tn(tn) => format!("{{\"tn\":{}}}", json_str(tn)),
            Party::Uri(uri) => format!("{{\"uri\":{}}}", json_str(uri)),
        };
        push_member(&mut out, "orig", &orig);
        if let Some(origid) = &self.origid {
            push_member(&mut out, "origid", &json_str(origid));
        }
        out.push('}');
        out
    }

    fn from_json(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or(Error::Malformed { what: "claims" })?;
        let orig = obj
            .get("orig")
            .and_then(Value::as_object)
            .ok_or(Error::Malformed { what: "orig" })?;
        let orig = if let Some(tn) = orig.get("tn").and_then(Value::as_str) {
            Party::Tn(crate::sip::normalize_tn(tn).ok_or(Error::Malformed { what: "orig" })?)
        } else if let Some(uri) = orig.get("uri").and_then(Value::as_str) {
            Party::Uri(uri.to_owned())
        } else {
            return Err(Error::Malformed { what: "orig" });
        };
        let dest_obj = obj
            .get("dest")
            .and_then(Value::as_object)
            .ok_or(Error::Malformed { what: "dest" })?;
        let mut dest = Vec::new();
        for (key, make) in [
            (
                "tn",
                (|s: &str| crate::sip::normalize_tn(s).map(Party::Tn)) as fn(&str) -> _,
            ),
            ("uri", |s: &str| Some(Party::Uri(s.to_owned()))),
        ] {
            if let Some(list) = dest_obj.get(key) {
                let list = list.as_array().ok_or(Error::Malformed { what: "dest" })?;
                for item in list {
                    let s = item.as_str().ok_or(Error::Malformed { what: "dest" })?;
                    dest.push(make(s).ok_or(Error::Malformed { what: "dest" })?);
                }
            }
        }
        if dest.is_empty() {
            return Err(Error::Malformed { what: "dest" });
        }
        let iat = obj
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or(Error::Malformed { what: "iat" })?;
        let attest = match obj.get("attest") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(Attestation::parse)
                    .ok_or(Error::Malformed { what: "attest" })?,
            ),
        };
        let origid = match obj.get("origid") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or(Error::Malformed { what: "origid" })?
                    .to_owned(),
            ),
        };
        Ok(Self {
            orig,
            dest,
            iat,
            attest,
            origid,
        })
    }
}

/// The protected header of a PASSporT (RFC 8225 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`; always `ES256` here.
    pub alg: String,
    /// `ppt`, the extension (`shaken`), if any.
    pub ppt: Option<String>,
    /// `typ`, `passport`.
    pub typ: String,
    /// `x5u`, the URL of the signing certificate.
    pub x5u: String,
}

impl Header {
    /// The canonical JSON of the header.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        push_member(&mut out, "alg", &json_str(&self.alg));
        if let Some(ppt) = &self.ppt {
            push_member(&mut out, "ppt", &json_str(ppt));
        }
        push_member(&mut out, "typ", &json_str(&self.typ));
        push_member(&mut out, "x5u", &json_str(&self.x5u));
        out.push('}');
        out
    }

    fn from_json(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or(Error::Malformed { what: "header" })?;
        let get = |k: &'static str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            alg: get("alg").ok_or(Error::Malformed { what: "alg" })?,
            ppt: get("ppt"),
            typ: get("typ").unwrap_or_else(|| "passport".to_owned()),
            x5u: get("x5u").ok_or(Error::MissingInfo)?,
        })
    }
}

/// A decoded PASSporT whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct Passport {
    /// The protected header.
    pub header: Header,
    /// The claims (rebuilt from SIP headers for the compact form).
    pub claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

impl Passport {
    /// Decodes a full-form PASSporT (`header.claims.signature`).
    pub fn decode(jws: &str) -> Result<Self> {
        let mut parts = jws.trim().split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed { what: "JWS" });
        };
        if c.is_empty() {
            return Err(Error::Malformed {
                what: "compact form needs the SIP request",
            });
        }
        let header = Header::from_json(&decode_json(h, "header")?)?;
        let claims = Claims::from_json(&decode_json(c, "claims")?)?;
        let signature = B64
            .decode(s)
            .map_err(|_| Error::Malformed { what: "signature" })?;
        Ok(Self {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature,
        })
    }

    /// Decodes a compact-form PASSporT (`header..signature`, RFC 8225
    /// section 7) with the claims rebuilt from the request.
    pub fn decode_compact(jws: &str, claims: Claims) -> Result<Self> {
        let mut parts = jws.trim().split('.');
        let (Some(h), Some(""), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed {
                what: "compact JWS",
            });
        };
        let header = Header::from_json(&decode_json(h, "header")?)?;
        let signature = B64
            .decode(s)
            .map_err(|_| Error::Malformed { what: "signature" })?;
        let payload = B64.encode(claims.to_json());
        Ok(Self {
            header,
            claims,
            signing_input: format!("{h}.{payload}"),
            signature,
        })
    }

    /// Checks the ES256 signature against an uncompressed P-256 public point
    /// (the subjectPublicKey of the signing certificate).
    pub fn verify_signature(&self, public_point: &[u8]) -> Result<()> {
        if self.header.alg != ES256 {
            return Err(Error::UnsupportedAlgorithm {
                alg: self.header.alg.clone(),
            });
        }
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public_point)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Error::BadSignature)
    }

    /// The raw signature bytes (the replay cache keys on them).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// An ES256 signer holding a P-256 private key and the `x5u` of its certificate.
#[derive(Debug)]
pub struct Signer {
    key: EcdsaKeyPair,
    x5u: String,
    rng: SystemRandom,
}

impl Signer {
    /// A signer from a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8], x5u: impl Into<String>) -> Result<Self> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|_| Error::BadKey {
                what: "not a PKCS#8 P-256 key",
            })?;
        Ok(Self {
            key,
            x5u: x5u.into(),
            rng,
        })
    }

    /// A signer from a PEM private key (`PRIVATE KEY`, PKCS#8, or `EC PRIVATE KEY`, SEC1).
    pub fn from_pem(pem: &str, x5u: impl Into<String>) -> Result<Self> {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject as _;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| Error::BadKey {
            what: "no private key in PEM",
        })?;
        match key {
            PrivateKeyDer::Pkcs8(der) => Self::from_pkcs8_der(der.secret_pkcs8_der(), x5u),
            PrivateKeyDer::Sec1(der) => {
                let (private, public) =
                    crate::der::sec1_parts(der.secret_sec1_der()).ok_or(Error::BadKey {
                        what: "not a SEC1 P-256 key",
                    })?;
                let rng = SystemRandom::new();
                let key = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    public,
                    &rng,
                )
                .map_err(|_| Error::BadKey {
                    what: "not a SEC1 P-256 key",
                })?;
                Ok(Self {
                    key,
                    x5u: x5u.into(),
                    rng,
                })
            }
            _ => Err(Error::BadKey {
                what: "not an EC key",
            }),
        }
    }

    /// The uncompressed public point of the key.
    pub fn public_point(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The `x5u` this signer announces.
    pub fn x5u(&self) -> &str {
        &self.x5u
    }

    /// Signs `claims` and returns the full-form PASSporT. `ppt` is `shaken`
    /// when the claims carry an attestation, absent otherwise.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let header = Header {
            alg: ES256.to_owned(),
            ppt: claims.attest.map(|_| PPT_SHAKEN.to_owned()),
            typ: "passport".to_owned(),
            x5u: self.x5u.clone(),
        };
        let input = format!(
            "{}.{}",
            B64.encode(header.to_json()),
            B64.encode(claims.to_json())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| Error::BadKey {
                what: "signing failed",
            })?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }
}

/// A fresh random origination identifier (`origid`): a version 4 UUID,
/// as RFC 8588 section 4 asks.
pub fn new_origid() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    // The system RNG does not fail on supported platforms; an all-zero
    // UUID (still well-formed) would be the fallback.
    let _ = SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn decode_json(part: &str, what: &'static str) -> Result<Value> {
    let bytes = B64.decode(part).map_err(|_| Error::Malformed { what })?;
    serde_json::from_slice(&bytes).map_err(|_| Error::Malformed { what })
}

fn json_str(s: &str) -> String {
    // Serialising a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

fn push_member(out: &mut String, key: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    out.push_str(value);
}
