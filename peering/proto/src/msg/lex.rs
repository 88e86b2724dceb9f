//! Character classes and small scanners of the RFC 3261 §25.1 grammar.
//!
//! Values handed to these helpers are header field values as received, so
//! folded lines still contain CRLF followed by white space: `LWS` here is any
//! run of SP, HTAB, CR and LF.

/// Character classes of RFC 3261 §25.1, one bit each, looked up in [`CLASS`].
pub(crate) const TOKEN: u8 = 1;
/// `unreserved = alphanum / mark`.
pub(crate) const UNRESERVED: u8 = 2;
/// LWS inside a header value: SP, HTAB, CR, LF.
pub(crate) const LWS: u8 = 4;
/// Characters of `user` (unreserved, escaped, user-unreserved).
pub(crate) const USER: u8 = 8;
/// Characters of `password`.
pub(crate) const PASSWORD: u8 = 16;
/// `paramchar` (param-unreserved, unreserved, escaped).
pub(crate) const PARAM: u8 = 32;
/// `hname` / `hvalue` characters.
pub(crate) const HNV: u8 = 64;
/// Host name characters: alphanum, `-`, `.`.
pub(crate) const HOST: u8 = 128;

const fn build_class() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mark = matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let mut v = 0;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= TOKEN;
        }
        if alnum || mark {
            v |= UNRESERVED;
        }
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            v |= LWS;
        }
        if alnum
            || mark
            || matches!(
                b,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
            )
        {
            v |= USER;
        }
        if alnum || mark || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
            v |= PASSWORD;
        }
        if alnum || mark || matches!(b, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            v |= PARAM;
        }
        if alnum || mark || matches!(b, b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            v |= HNV;
        }
        if alnum || matches!(b, b'-' | b'.') {
            v |= HOST;
        }
        t[c] = v;
        c += 1;
    }
    t
}

/// The class table.
pub(crate) static CLASS: [u8; 256] = build_class();

/// Whether `b` is in all of the classes in `mask`.
#[inline]
pub(crate) fn is(b: u8, mask: u8) -> bool {
    CLASS[b as usize] & mask == mask
}

/// Whether every byte of `s` is in the class.
#[inline]
pub(crate) fn all(s: &[u8], mask: u8) -> bool {
    s.iter().all(|b| CLASS[*b as usize] & mask != 0)
}

/// `token` characters: `alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"`.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, TOKEN)
}

/// White space inside a header value (folding included).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    is(b, LWS)
}

/// Whether every byte is a token character (and there is at least one).
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && all(s.as_bytes(), TOKEN)
}

/// Skips LWS from `i`.
pub(crate) fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

/// Skips token characters from `i`.
pub(crate) fn skip_token(s: &[u8], i: usize) -> usize {
    skip_table(s, i, &CLASS, TOKEN)
}

/// Skips the octets from `i` whose entry in `table` has the bit `bit`,
/// four at a time while it can (one test for four octets), then one by one.
#[inline(always)]
pub(crate) fn skip_table(b: &[u8], mut i: usize, table: &[u8; 256], bit: u8) -> usize {
    while let Some(w) = b.get(i..i + 4) {
        let k = table[w[0] as usize]
            & table[w[1] as usize]
            & table[w[2] as usize]
            & table[w[3] as usize];
        if k & bit == 0 {
            break;
        }
        i += 4;
    }
    while let Some(c) = b.get(i) {
        if table[*c as usize] & bit == 0 {
            break;
        }
        i += 1;
    }
    i
}

/// Trims LWS on both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut a = 0;
    let mut e = b.len();
    while a < e && is_lws(b[a]) {
        a += 1;
    }
    while e > a && is_lws(b[e - 1]) {
        e -= 1;
    }
    // Both ends sit next to ASCII octets, so on character boundaries.
    s.get(a..e).unwrap_or_default()
}

/// `s[i]` is `"`: returns the index just past the closing quote of the
/// `quoted-string`, honouring `quoted-pair` escapes, or `None` when it is
/// unterminated.
pub(crate) fn skip_quoted(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' => return Some(j + 1),
            b'\\' => {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                let next = *s.get(j + 1)?;
                if next == b'\n' || next == b'\r' || next > 0x7f {
                    return None;
                }
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}

/// Validates `%` escapes: each `%` must be followed by two hex digits.
pub(crate) fn escapes_ok(s: &[u8]) -> bool {
    let Some(mut i) = memchr::memchr(b'%', s) else {
        return true;
    };
    while i < s.len() {
        if s[i] == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// Decodes `%HH` escapes (invalid escapes are kept literally).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex_val(*c)),
                b.get(i + 2).and_then(|c| hex_val(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits a list value at top-level commas (outside quoted strings and
/// `<...>`), yielding each element's byte range trimmed of LWS. Empty elements
/// are yielded too (as empty ranges) so callers can reject them.
pub(crate) fn split_list(s: &str) -> ListIter<'_> {
    ListIter {
        s: s.as_bytes(),
        pos: 0,
        done: false,
        // Without any comma there is exactly one element, the whole value.
        single: memchr::memchr(b',', s.as_bytes()).is_none(),
    }
}

/// Iterator behind [`split_list`].
pub(crate) struct ListIter<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
    single: bool,
}

impl Iterator for ListIter<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let end = if self.single {
            self.done = true;
            s.len()
        } else {
            self.split_at_comma(start)
        };
        let mut a = start;
        let mut b = end;
        while a < b && is_lws(s[a]) {
            a += 1;
        }
        while b > a && is_lws(s[b - 1]) {
            b -= 1;
        }
        Some((a, b))
    }
}

impl ListIter<'_> {
    /// Finds the end of the element starting at `start`: the next top-level
    /// comma (then `pos` moves past it) or the end of the value.
    fn split_at_comma(&mut self, start: usize) -> usize {
        let s = self.s;
        let mut i = start;
        let mut in_angle = false;
        loop {
            // Inside <...> only '>' matters (a URI holds no quote or comma
            // that ends the value); outside, '"', '<' and ','.
            let next = if in_angle {
                memchr::memchr(b'>', &s[i..])
            } else {
                memchr::memchr3(b'"', b'<', b',', &s[i..])
            };
            i = next.map_or(s.len(), |p| i + p);
            if i >= s.len() {
                self.done = true;
                break s.len();
            }
            match s[i] {
                b'"' => match skip_quoted(s, i) {
                    Some(j) => i = j,
                    None => i = s.len(),
                },
                b'<' => {
                    in_angle = true;
                    i += 1;
                }
                b'>' => {
                    in_angle = false;
                    i += 1;
                }
                b',' if !in_angle => {
                    self.pos = i + 1;
                    break i;
                }
                _ => i += 1,
            }
        }
    }
}

/// Case-insensitive ASCII comparison.
pub(crate) fn eq_ic(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A search for the first CR or LF, set up once per message.
///
/// `memchr::memchr2` picks its implementation and broadcasts the needles on
/// every call; a message's header section is searched once per line, and
/// lines are short, so that setup was a fifth of the line search.
#[derive(Clone, Copy)]
pub(crate) struct CrLf {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::Two>,
}

impl CrLf {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::Two::new(b'\r', b'\n'),
        }
    }

    /// The position of the first CR or LF in `h`.
    #[inline(always)]
    pub(crate) fn find(&self, h: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.avx2 {
            return t.find(h);
        }
        memchr::memchr2(b'\r', b'\n', h)
    }
}
