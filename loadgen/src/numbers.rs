//! Where callee numbers come from: a list (read from a file) or a range.

use std::path::Path;

use crate::error::Error;

/// A cyclic source of callee numbers.
#[derive(Debug, Clone)]
pub enum Numbers {
    /// Numbers listed explicitly, used in order and then again.
    List(Vec<String>),
    /// `prefix` followed by `first..first+count` (decimal, zero-padded to
    /// the width of the last number).
    Range {
        /// Fixed leading part, e.g. `+47`.
        prefix: String,
        /// First number of the range.
        first: u64,
        /// How many numbers.
        count: u64,
        /// Digits of each number after the prefix.
        width: usize,
    },
}

impl Numbers {
    /// Reads one number per line (blank lines and `#` comments skipped).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            what: "numbers file",
            source,
        })?;
        Self::from_lines(&text)
    }

    /// Parses the text of a numbers file.
    pub fn from_lines(text: &str) -> Result<Self, Error> {
        let list: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(Error::Numbers {
                reason: "no number in the file",
            });
        }
        Ok(Self::List(list))
    }

    /// Parses a range `FIRST-LAST`, e.g. `+4721000000-+4721999999`: both
    /// ends must share the non-digit prefix and have the same length.
    pub fn from_range(spec: &str) -> Result<Self, Error> {
        let bad = |reason| Error::Numbers { reason };
        let (a, b) = spec
            .rsplit_once('-')
            .ok_or_else(|| bad("a range is FIRST-LAST"))?;
        let split = |s: &str| -> (String, String) {
            let i = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
            (s[..i].to_owned(), s[i..].to_owned())
        };
        let (pa, da) = split(a.trim());
        let (pb, db) = split(b.trim());
        if pa != pb || da.is_empty() || da.len() != db.len() {
            return Err(bad("both ends need the same prefix and number of digits"));
        }
        if !da.bytes().chain(db.bytes()).all(|c| c.is_ascii_digit()) || da.len() > 18 {
            return Err(bad("the ends must be digits (at most 18)"));
        }
        let first: u64 = da.parse().map_err(|_| bad("bad first number"))?;
        let last: u64 = db.parse().map_err(|_| bad("bad last number"))?;
        if last < first {
            return Err(bad("the range is empty"));
        }
        Ok(Self::Range {
            prefix: pa,
            first,
            count: last - first + 1,
            width: da.len(),
        })
    }

    /// The `i`-th number (modulo the size of the source).
    pub fn get(&self, i: u64) -> String {
        match self {
            Self::List(list) => list[(i % list.len() as u64) as usize].clone(),
            Self::Range {
                prefix,
                first,
                count,
                width,
            } => format!("{prefix}{:0width$}", first + i % count),
        }
    }
}
