//! Character classes and small scanners of the RFC 3261 §25.1 grammar.
//!
//! Values handed to these helpers are header field values as received, so
//! folded lines still contain CRLF followed by white space: `LWS` here is any
//! run of SP, HTAB, CR and LF.

/// `token` characters: `alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"`.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// `unreserved = alphanum / mark`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// White space inside a header value (folding included).
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Whether every byte is a token character (and there is at least one).
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// Skips LWS from `i`.
pub(crate) fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

/// Skips token characters from `i`.
pub(crate) fn skip_token(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_token(s[i]) {
        i += 1;
    }
    i
}

/// Trims LWS on both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
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
    let mut i = 0;
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
    }
}

/// Iterator behind [`split_list`].
pub(crate) struct ListIter<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl Iterator for ListIter<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        let mut in_angle = false;
        let end = loop {
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

/// Case-insensitive ASCII comparison.
pub(crate) fn eq_ic(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
