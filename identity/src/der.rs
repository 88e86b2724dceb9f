//! A minimal DER reader for the two structures no dependency parses for us:
//! RFC 8226's TNAuthorizationList and SEC1 EC private keys.

/// One TLV: tag byte and contents.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Reads consecutive TLVs from a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn read(&mut self) -> Option<Tlv<'a>> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers do not occur in these structures
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Tlv { tag, value })
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const IA5_STRING: u8 = 0x16;

/// One entry of an RFC 8226 TN authorization list.
///
/// ```text
/// TNAuthorizationList ::= SEQUENCE SIZE (1..MAX) OF TNEntry
/// TNEntry ::= CHOICE {
///   spc   [0] ServiceProviderCode,     -- IA5String
///   range [1] TelephoneNumberRange,    -- SEQUENCE { start TelephoneNumber, count INTEGER }
///   one   [2] TelephoneNumber }        -- IA5String
/// ```
///
/// The module uses EXPLICIT tags; IMPLICIT encodings are accepted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TnEntry {
    /// A service provider code.
    Spc(String),
    /// `count` numbers starting at `start`.
    Range {
        /// First number of the range (digits).
        start: String,
        /// How many numbers.
        count: u64,
    },
    /// One telephone number (digits).
    One(String),
}

impl TnEntry {
    /// Whether the entry covers the normalised telephone number `tn`.
    pub fn covers(&self, tn: &str) -> bool {
        match self {
            Self::Spc(_) => false,
            Self::One(one) => one == tn,
            Self::Range { start, count } => {
                if start.len() != tn.len() || start.len() > 38 {
                    return false;
                }
                match (start.parse::<u128>(), tn.parse::<u128>()) {
                    (Ok(s), Ok(t)) => t >= s && t - s < u128::from(*count),
                    _ => false,
                }
            }
        }
    }
}

/// Parses the extension value of a TNAuthList extension
/// (id-pe-TNAuthList, 1.3.6.1.5.5.7.1.26).
pub fn parse_tn_auth_list(der: &[u8]) -> Option<Vec<TnEntry>> {
    let mut outer = Reader::new(der);
    let seq = outer.read()?;
    if seq.tag != SEQUENCE || !outer.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    let mut items = Reader::new(seq.value);
    while !items.is_empty() {
        let item = items.read()?;
        let entry = match item.tag {
            0xa0 => TnEntry::Spc(explicit_string(item.value)?),
            0x80 => TnEntry::Spc(ascii(item.value)?),
            0xa2 => TnEntry::One(digits(&explicit_string(item.value)?)?),
            0x82 => TnEntry::One(digits(&ascii(item.value)?)?),
            0xa1 => {
                let mut r = Reader::new(item.value);
                let first = r.read()?;
                let body = if first.tag == SEQUENCE && r.is_empty() {
                    first.value // EXPLICIT [1] SEQUENCE { .. }
                } else {
                    item.value // IMPLICIT: the tag replaced SEQUENCE
                };
                range(body)?
            }
            _ => return None,
        };
        entries.push(entry);
    }
    (!entries.is_empty()).then_some(entries)
}

fn range(body: &[u8]) -> Option<TnEntry> {
    let mut r = Reader::new(body);
    let start = r.read()?;
    if start.tag != IA5_STRING {
        return None;
    }
    let count = r.read()?;
    if count.tag != INTEGER || count.value.is_empty() || count.value.len() > 8 {
        return None;
    }
    if count.value[0] & 0x80 != 0 {
        return None; // negative
    }
    let count = count
        .value
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Some(TnEntry::Range {
        start: digits(&ascii(start.value)?)?,
        count,
    })
}

fn explicit_string(value: &[u8]) -> Option<String> {
    let mut r = Reader::new(value);
    let inner = r.read()?;
    if inner.tag != IA5_STRING || !r.is_empty() {
        return None;
    }
    ascii(inner.value)
}

fn ascii(bytes: &[u8]) -> Option<String> {
    bytes
        .is_ascii()
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

fn digits(s: &str) -> Option<String> {
    crate::sip::normalize_tn(s)
}

/// Encodes a TNAuthList extension value (EXPLICIT tags), for certificate
/// issuance by tools and tests.
pub fn encode_tn_auth_list(entries: &[TnEntry]) -> Vec<u8> {
    let mut body = Vec::new();
    for entry in entries {
        let encoded = match entry {
            TnEntry::Spc(spc) => tlv(0xa0, &tlv(IA5_STRING, spc.as_bytes())),
            TnEntry::One(tn) => tlv(0xa2, &tlv(IA5_STRING, tn.as_bytes())),
            TnEntry::Range { start, count } => {
                let mut int = count.to_be_bytes().to_vec();
                while int.len() > 1 && int[0] == 0 && int[1] & 0x80 == 0 {
                    int.remove(0);
                }
                if int[0] & 0x80 != 0 {
                    int.insert(0, 0);
                }
                let mut seq = tlv(IA5_STRING, start.as_bytes());
                seq.extend(tlv(INTEGER, &int));
                tlv(0xa1, &tlv(SEQUENCE, &seq))
            }
        };
        body.extend(encoded);
    }
    tlv(SEQUENCE, &body)
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// Splits a SEC1 `ECPrivateKey` (RFC 5915) into the private scalar and the
/// public point, as ring wants them.
///
/// ```text
/// ECPrivateKey ::= SEQUENCE {
///   version        INTEGER { ecPrivkeyVer1(1) },
///   privateKey     OCTET STRING,
///   parameters [0] ECParameters {{ NamedCurve }} OPTIONAL,
///   publicKey  [1] BIT STRING OPTIONAL }
/// ```
pub(crate) fn sec1_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut outer = Reader::new(der);
    let seq = outer.read()?;
    if seq.tag != SEQUENCE {
        return None;
    }
    let mut r = Reader::new(seq.value);
    let version = r.read()?;
    if version.tag != INTEGER || version.value != [1] {
        return None;
    }
    let private = r.read()?;
    if private.tag != OCTET_STRING {
        return None;
    }
    while !r.is_empty() {
        let item = r.read()?;
        if item.tag == 0xa1 {
            let mut inner = Reader::new(item.value);
            let bits = inner.read()?;
            if bits.tag != 0x03 || bits.value.first() != Some(&0) {
                return None;
            }
            return Some((private.value, &bits.value[1..]));
        }
    }
    None
}
