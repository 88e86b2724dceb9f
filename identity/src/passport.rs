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

use crate::error::{Error, Result};
use crate::p256::Es256Key;
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

    /// The claims from the decoded JSON, with the checks and the error for
    /// each member that the former [`serde_json::Value`] reading had.
    fn from_json(json: &[u8]) -> Result<Self> {
        let raw: json::Object<json::RawClaims<'_>> =
            serde_json::from_slice(json).map_err(|_| Error::Malformed { what: "claims" })?;
        let raw = raw.0.ok_or(Error::Malformed { what: "claims" })?;
        let orig = raw
            .orig
            .and_then(|o| o.0)
            .ok_or(Error::Malformed { what: "orig" })?;
        let orig = if let Some(tn) = orig.tn.and_then(|t| t.0) {
            Party::Tn(crate::sip::normalize_tn(&tn).ok_or(Error::Malformed { what: "orig" })?)
        } else if let Some(uri) = orig.uri.and_then(|u| u.0) {
            Party::Uri(uri.into_owned())
        } else {
            return Err(Error::Malformed { what: "orig" });
        };
        let dest_obj = raw
            .dest
            .and_then(|d| d.0)
            .ok_or(Error::Malformed { what: "dest" })?;
        let bad_dest = || Error::Malformed { what: "dest" };
        let mut dest = Vec::new();
        if let Some(list) = dest_obj.tn {
            for item in list.0.ok_or_else(bad_dest)? {
                let s = item.0.ok_or_else(bad_dest)?;
                dest.push(Party::Tn(
                    crate::sip::normalize_tn(&s).ok_or_else(bad_dest)?,
                ));
            }
        }
        if let Some(list) = dest_obj.uri {
            for item in list.0.ok_or_else(bad_dest)? {
                let s = item.0.ok_or_else(bad_dest)?;
                dest.push(Party::Uri(s.into_owned()));
            }
        }
        if dest.is_empty() {
            return Err(bad_dest());
        }
        let iat = raw
            .iat
            .and_then(|i| i.0)
            .ok_or(Error::Malformed { what: "iat" })?;
        let attest = match raw.attest {
            None => None,
            Some(v) => Some(
                v.0.as_deref()
                    .and_then(Attestation::parse)
                    .ok_or(Error::Malformed { what: "attest" })?,
            ),
        };
        let origid = match raw.origid {
            None => None,
            Some(v) => Some(v.0.ok_or(Error::Malformed { what: "origid" })?.into_owned()),
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

    /// The header from the decoded JSON: `alg` and `x5u` must be strings,
    /// `ppt` counts only as a string, `typ` defaults to `passport`.
    fn from_json(json: &[u8]) -> Result<Self> {
        let raw: json::Object<json::RawHeader<'_>> =
            serde_json::from_slice(json).map_err(|_| Error::Malformed { what: "header" })?;
        let raw = raw.0.ok_or(Error::Malformed { what: "header" })?;
        fn get(v: Option<json::MaybeStr<'_>>) -> Option<String> {
            v.and_then(|s| s.0).map(|s| s.into_owned())
        }
        Ok(Self {
            alg: get(raw.alg).ok_or(Error::Malformed { what: "alg" })?,
            ppt: get(raw.ppt),
            typ: get(raw.typ).unwrap_or_else(|| "passport".to_owned()),
            x5u: get(raw.x5u).ok_or(Error::MissingInfo)?,
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
        let header = Header::from_json(&decode_b64(h, "header", &mut [0; 512])?)?;
        let claims = Claims::from_json(&decode_b64(c, "claims", &mut [0; 1024])?)?;
        let signature = B64
            .decode(s)
            .map_err(|_| Error::Malformed { what: "signature" })?;
        Ok(Self {
            header,
            claims,
            // `h.c`, as it stands in the token.
            signing_input: jws.trim()[..h.len() + 1 + c.len()].to_owned(),
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
        let header = Header::from_json(&decode_b64(h, "header", &mut [0; 512])?)?;
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
        self.check_es256()?;
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public_point)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Error::BadSignature)
    }

    /// [`Passport::verify_signature`] with the signing key's table of
    /// multiples (see [`crate::p256`]): the same answer, in about two fifths
    /// of the time.
    pub fn verify_signature_with(&self, key: &Es256Key) -> Result<()> {
        self.check_es256()?;
        if key.verify(self.signing_input.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(Error::BadSignature)
        }
    }

    /// ES256 is the only algorithm a PASSporT is verified with.
    fn check_es256(&self) -> Result<()> {
        if self.header.alg == ES256 {
            Ok(())
        } else {
            Err(Error::UnsupportedAlgorithm {
                alg: self.header.alg.clone(),
            })
        }
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

/// Decodes one base64url part, into `buf` when it fits (header and claims
/// of ordinary PASSporTs do), else onto the heap.
fn decode_b64<'b>(
    part: &str,
    what: &'static str,
    buf: &'b mut [u8],
) -> Result<std::borrow::Cow<'b, [u8]>> {
    let bad = Error::Malformed { what };
    if base64::decoded_len_estimate(part.len()) <= buf.len() {
        let n = B64.decode_slice(part, buf).map_err(|_| bad)?;
        Ok(std::borrow::Cow::Borrowed(&buf[..n]))
    } else {
        Ok(std::borrow::Cow::Owned(B64.decode(part).map_err(|_| bad)?))
    }
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

/// Reading PASSporT JSON straight into the few members the verifier needs,
/// with the leniency the former [`serde_json::Value`] reading had: a member
/// of an unexpected type counts as absent (the caller then reports that
/// member), a repeated member counts with its last value, unknown members
/// are skipped. Strings borrow from the decoded JSON unless they hold escapes.
mod json {
    use std::borrow::Cow;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// The visits of a value of another type than wanted: consume it, give
    /// the "absent" value.
    macro_rules! other_types {
        ($absent:expr) => {
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok($absent)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok($absent)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok($absent)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok($absent)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok($absent)
            }
        };
    }
    macro_rules! other_str {
        ($absent:expr) => {
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok($absent)
            }
        };
    }
    macro_rules! other_u64 {
        ($absent:expr) => {
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok($absent)
            }
        };
    }
    macro_rules! other_seq {
        ($de:lifetime, $absent:expr) => {
            fn visit_seq<A: SeqAccess<$de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok($absent)
            }
        };
    }
    macro_rules! other_map {
        ($de:lifetime, $absent:expr) => {
            fn visit_map<A: MapAccess<$de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok($absent)
            }
        };
    }

    /// A string (`Some`) or any other value (`None`).
    pub(super) struct MaybeStr<'a>(pub(super) Option<Cow<'a, str>>);

    impl<'de> Deserialize<'de> for MaybeStr<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = MaybeStr<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(MaybeStr(Some(Cow::Borrowed(v))))
                }
                fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
                }
                fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                    Ok(MaybeStr(Some(Cow::Owned(v))))
                }
                other_types!(MaybeStr(None));
                other_u64!(MaybeStr(None));
                other_seq!('de, MaybeStr(None));
                other_map!('de, MaybeStr(None));
            }
            d.deserialize_any(V)
        }
    }

    /// A non-negative integer that fits `u64` (`Some`) or any other value
    /// (`None`), as `Value::as_u64` had it.
    pub(super) struct MaybeU64(pub(super) Option<u64>);

    impl<'de> Deserialize<'de> for MaybeU64 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = MaybeU64;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                    Ok(MaybeU64(Some(v)))
                }
                fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                    Ok(MaybeU64(None))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                    Ok(MaybeU64(u64::try_from(v).ok()))
                }
                fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                    Ok(MaybeU64(None))
                }
                fn visit_unit<E>(self) -> Result<Self::Value, E> {
                    Ok(MaybeU64(None))
                }
                fn visit_none<E>(self) -> Result<Self::Value, E> {
                    Ok(MaybeU64(None))
                }
                other_str!(MaybeU64(None));
                other_seq!('de, MaybeU64(None));
                other_map!('de, MaybeU64(None));
            }
            d.deserialize_any(V)
        }
    }

    /// An array of values (`Some`) or any other value (`None`).
    pub(super) struct MaybeList<T>(pub(super) Option<Vec<T>>);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for MaybeList<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                type Value = MaybeList<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                    while let Some(item) = seq.next_element()? {
                        items.push(item);
                    }
                    Ok(MaybeList(Some(items)))
                }
                other_types!(MaybeList(None));
                other_u64!(MaybeList(None));
                other_str!(MaybeList(None));
                other_map!('de, MaybeList(None));
            }
            d.deserialize_any(V(PhantomData))
        }
    }

    /// The members of one JSON object type.
    pub(super) trait Members<'de>: Default {
        /// Reads the value of member `key` (the last one counts).
        fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
    }

    /// An object (`Some`) or any other value (`None`).
    pub(super) struct Object<T>(pub(super) Option<T>);

    impl<'de, T: Members<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(PhantomData<T>);
            impl<'de, T: Members<'de>> Visitor<'de> for V<T> {
                type Value = Object<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut members = T::default();
                    while let Some(key) = map.next_key::<Key<'de>>()? {
                        members.member(&key.0, &mut map)?;
                    }
                    Ok(Object(Some(members)))
                }
                other_types!(Object(None));
                other_u64!(Object(None));
                other_str!(Object(None));
                other_seq!('de, Object(None));
            }
            d.deserialize_any(V(PhantomData))
        }
    }

    /// A member name, unescaped.
    struct Key<'a>(Cow<'a, str>);

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(Key(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Key(Cow::Owned(v.to_owned())))
                }
                fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                    Ok(Key(Cow::Owned(v)))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// The protected header's members.
    #[derive(Default)]
    pub(super) struct RawHeader<'a> {
        pub(super) alg: Option<MaybeStr<'a>>,
        pub(super) ppt: Option<MaybeStr<'a>>,
        pub(super) typ: Option<MaybeStr<'a>>,
        pub(super) x5u: Option<MaybeStr<'a>>,
    }

    impl<'de> Members<'de> for RawHeader<'de> {
        fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
            let slot = match key {
                "alg" => &mut self.alg,
                "ppt" => &mut self.ppt,
                "typ" => &mut self.typ,
                "x5u" => &mut self.x5u,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    return Ok(());
                }
            };
            *slot = Some(map.next_value()?);
            Ok(())
        }
    }

    /// The claims' members.
    #[derive(Default)]
    pub(super) struct RawClaims<'a> {
        pub(super) orig: Option<Object<RawOrig<'a>>>,
        pub(super) dest: Option<Object<RawDest<'a>>>,
        pub(super) iat: Option<MaybeU64>,
        pub(super) attest: Option<MaybeStr<'a>>,
        pub(super) origid: Option<MaybeStr<'a>>,
    }

    impl<'de> Members<'de> for RawClaims<'de> {
        fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
            match key {
                "orig" => self.orig = Some(map.next_value()?),
                "dest" => self.dest = Some(map.next_value()?),
                "iat" => self.iat = Some(map.next_value()?),
                "attest" => self.attest = Some(map.next_value()?),
                "origid" => self.origid = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    /// `orig`: `tn` or `uri`.
    #[derive(Default)]
    pub(super) struct RawOrig<'a> {
        pub(super) tn: Option<MaybeStr<'a>>,
        pub(super) uri: Option<MaybeStr<'a>>,
    }

    impl<'de> Members<'de> for RawOrig<'de> {
        fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
            match key {
                "tn" => self.tn = Some(map.next_value()?),
                "uri" => self.uri = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    /// `dest`: lists of `tn` and `uri`.
    #[derive(Default)]
    pub(super) struct RawDest<'a> {
        pub(super) tn: Option<MaybeList<MaybeStr<'a>>>,
        pub(super) uri: Option<MaybeList<MaybeStr<'a>>>,
    }

    impl<'de> Members<'de> for RawDest<'de> {
        fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
            match key {
                "tn" => self.tn = Some(map.next_value()?),
                "uri" => self.uri = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
}
