//! ES256 signature verification (ECDSA over P-256 with SHA-256, FIPS 186-5
//! section 6.4.2) with a precomputed table per signing key.
//!
//! A node verifies thousands of PASSporTs per second signed by a handful of
//! keys (one or a few per originating provider). ring computes `u2·Q` for
//! each signature from scratch, in constant time: 256 point doublings and
//! about 50 additions, the bulk of an ES256 verification. Nothing in a
//! verification is secret, so here both `u1·G` and `u2·Q` are read from
//! tables of multiples, no doubling: 37 additions from the key's table
//! (7-bit windows, made once per key, 150 KB), 22 from the generator's
//! (12-bit windows, shared by all keys, 2.9 MB). The entries a verification
//! needs are read all together before the additions start, so that the
//! cache misses of the large table overlap instead of adding up.
//!
//! - Field addition and subtraction and all arithmetic modulo n are
//!   fiat-crypto's (generated from a proof of correctness, safe Rust). The
//!   inverse of `s` is a variable-time safegcd ([`crate::modinv`]),
//!   checked by a multiplication. Field multiplication and squaring are
//!   written here for p's shape (about 40 % faster than fiat's generic
//!   Montgomery code) and tested against fiat's.
//! - This module adds the point formulas, the tables and the checks of the
//!   verification algorithm.
//! - The point formulas are Jacobian (`madd-2007-bl`, `dbl-2001-b` for
//!   `a = -3`) and handle their exceptional cases (adding a point to
//!   itself or to its negation, the point at infinity) explicitly, so any
//!   `(r, s)` an attacker picks is computed exactly.
//! - The final check compares `x(R)` in Jacobian coordinates (`X = r·Z²`,
//!   and `(r + n)·Z²` when `r + n < p`): no field inversion per signature.
//!
//! Everything here is variable time. That is fine for verification (the key,
//! the message and the signature are public) and would not be for signing,
//! which stays with ring.

use std::sync::LazyLock;

use fiat_crypto::p256_64 as fp;
use fiat_crypto::p256_scalar_64 as fs;

use crate::modinv;

/// Bits per window of a key's table: 37 windows of 64 points, 150 KB a key
/// (a node keeps the tables of every key it has seen recently).
const W_KEY: usize = 7;
/// Bits per window of the generator's table, which every key shares: 22
/// windows of 2,048 points (2.9 MB), so `u1·G` takes 22 additions instead
/// of 37. Made once per process, in about 20 ms.
const W_GEN: usize = 12;
/// The most windows a scalar has (with the narrowest window): 257 bits,
/// because a signed recoding can carry one bit past the top of a 256-bit
/// scalar.
const MAX_WINDOWS: usize = 257usize.div_ceil(W_KEY);

/// Windows per scalar with `w`-bit windows.
const fn windows(w: usize) -> usize {
    257usize.div_ceil(w)
}

/// Table entries per window: the multiples 1 to 2^(w-1) of the window's base.
const fn row_len(w: usize) -> usize {
    1 << (w - 1)
}

/// The field prime p, big-endian.
const P_BE: [u8; 32] = hex32("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
/// The group order n, in hex and big-endian.
const N_HEX: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const N_BE: [u8; 32] = hex32(N_HEX);
/// p - n: an `r` below it has a second candidate `r + n` for `x(R)`.
const P_MINUS_N_BE: [u8; 32] =
    hex32("000000000000000000000000000000004319055358e8617b0c46353d039cdaae");
/// The curve's `b` (the equation is y² = x³ - 3x + b).
const B_BE: [u8; 32] = hex32("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");
/// The generator's coordinates.
const GX_BE: [u8; 32] = hex32("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
const GY_BE: [u8; 32] = hex32("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
/// p - 2 and n - 2, the exponents of Fermat inversion.
const P_MINUS_2_BE: [u8; 32] =
    hex32("ffffffff00000001000000000000000000000000fffffffffffffffffffffffd");
const N_MINUS_2_BE: [u8; 32] =
    hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254f");

/// 64 hex digits to 32 bytes, at compile time.
const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Whether little-endian limbs hold an integer below n.
fn limbs_below_n(l: &[u64; 4]) -> bool {
    let n = limbs(&N_BE);
    for i in (0..4).rev() {
        if l[i] != n[i] {
            return l[i] < n[i];
        }
    }
    false
}

/// Big-endian bytes to little-endian 64-bit limbs.
fn limbs(be: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let start = 32 - 8 * (i + 1);
        let mut word = [0u8; 8];
        word.copy_from_slice(&be[start..start + 8]);
        *limb = u64::from_be_bytes(word);
    }
    out
}

/// `a + b·c + carry` as (low, high) words.
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = u128::from(a) + u128::from(b) * u128::from(c) + u128::from(carry);
    (t as u64, (t >> 64) as u64)
}

/// `a + b + carry` as (sum, carry out).
#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = u128::from(a) + u128::from(b) + u128::from(carry);
    (t as u64, (t >> 64) as u64)
}

/// `t / 2^256 mod p` for `t < p·2^256` (Montgomery reduction), fully reduced.
///
/// The multiplications by p are shifts and one multiply per word because of
/// p's shape (`p = 2^256 - 2^224 + 2^192 + 2^96 - 1`, so `-1/p mod 2^64 = 1`
/// and each round's multiplier is the word being cleared). The tests check
/// it against fiat-crypto's `fiat_p256_mul`.
#[inline(always)]
fn montgomery_reduce(mut t: [u64; 8]) -> [u64; 4] {
    const P3: u64 = 0xffff_ffff_0000_0001;
    let mut top = 0u64;
    for i in 0..4 {
        let m = t[i];
        // t[i] + m·(2^64 - 1) = m·2^64: the word clears and m carries.
        // t[i+1] + m·(2^32 - 1) + m = t[i+1] + m·2^32.
        let (w1, c) = adc(t[i + 1], m << 32, 0);
        let carry = c + (m >> 32);
        // p's third word is zero.
        let (w2, carry) = adc(t[i + 2], carry, 0);
        let (w3, carry) = mac(t[i + 3], m, P3, carry);
        let (w4, c) = adc(t[i + 4], carry, top);
        t[i + 1] = w1;
        t[i + 2] = w2;
        t[i + 3] = w3;
        t[i + 4] = w4;
        top = c;
    }
    // The result, below 2p, is t[4..8] + top·2^256; subtract p once if needed.
    let p = [u64::MAX, 0x0000_0000_ffff_ffff, 0, P3];
    let mut d = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (x, b1) = t[i + 4].overflowing_sub(p[i]);
        let (x, b2) = x.overflowing_sub(borrow);
        d[i] = x;
        borrow = u64::from(b1 || b2);
    }
    // t - p is negative only if it borrowed past the top word and top is 0.
    if borrow > top {
        [t[4], t[5], t[6], t[7]]
    } else {
        d
    }
}

/// An element of GF(p) in Montgomery form, always fully reduced (fiat's
/// functions guarantee it), so equal elements have equal limbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fe([u64; 4]);

impl Fe {
    const ZERO: Fe = Fe([0; 4]);

    fn one() -> Fe {
        let mut out = fp::fiat_p256_montgomery_domain_field_element([0; 4]);
        fp::fiat_p256_set_one(&mut out);
        Fe(out.0)
    }

    /// The element whose big-endian encoding is `be`, if it is below p.
    fn from_be(be: &[u8; 32]) -> Option<Fe> {
        if *be >= P_BE {
            return None;
        }
        let mut out = fp::fiat_p256_montgomery_domain_field_element([0; 4]);
        fp::fiat_p256_to_montgomery(
            &mut out,
            &fp::fiat_p256_non_montgomery_domain_field_element(limbs(be)),
        );
        Some(Fe(out.0))
    }

    /// A constant known to be below p.
    fn constant(be: &[u8; 32]) -> Fe {
        Fe::from_be(be).unwrap_or(Fe::ZERO)
    }

    #[inline]
    fn mul(self, b: Fe) -> Fe {
        let (a, b) = (&self.0, &b.0);
        // The 512-bit product, row by row.
        let mut t = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0;
            for j in 0..4 {
                (t[i + j], carry) = mac(t[i + j], a[i], b[j], carry);
            }
            t[i + 4] = carry;
        }
        Fe(montgomery_reduce(t))
    }

    #[inline]
    fn sqr(self) -> Fe {
        let a = &self.0;
        // The cross products a_i·a_j (i < j) once, doubled, then the squares.
        let mut t = [0u64; 8];
        for i in 0..3 {
            let mut carry = 0;
            for j in i + 1..4 {
                (t[i + j], carry) = mac(t[i + j], a[i], a[j], carry);
            }
            t[i + 4] = carry;
        }
        let mut top = 0;
        for limb in t.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | top;
            top = next;
        }
        let mut carry = 0;
        for i in 0..4 {
            let sq = u128::from(a[i]) * u128::from(a[i]);
            let (lo, c) = adc(t[2 * i], sq as u64, carry);
            let (hi, c) = adc(t[2 * i + 1], (sq >> 64) as u64, c);
            t[2 * i] = lo;
            t[2 * i + 1] = hi;
            carry = c;
        }
        Fe(montgomery_reduce(t))
    }

    #[inline]
    fn add(self, b: Fe) -> Fe {
        let mut out = fp::fiat_p256_montgomery_domain_field_element([0; 4]);
        fp::fiat_p256_add(
            &mut out,
            &fp::fiat_p256_montgomery_domain_field_element(self.0),
            &fp::fiat_p256_montgomery_domain_field_element(b.0),
        );
        Fe(out.0)
    }

    #[inline]
    fn sub(self, b: Fe) -> Fe {
        let mut out = fp::fiat_p256_montgomery_domain_field_element([0; 4]);
        fp::fiat_p256_sub(
            &mut out,
            &fp::fiat_p256_montgomery_domain_field_element(self.0),
            &fp::fiat_p256_montgomery_domain_field_element(b.0),
        );
        Fe(out.0)
    }

    #[inline]
    fn neg(self) -> Fe {
        Fe::ZERO.sub(self)
    }

    #[inline]
    fn is_zero(self) -> bool {
        self.0 == [0; 4]
    }

    /// `self^e` for a big-endian exponent, square and multiply.
    fn pow(self, e: &[u8; 32]) -> Fe {
        let mut acc = Fe::one();
        for byte in e {
            for bit in (0..8).rev() {
                acc = acc.sqr();
                if (byte >> bit) & 1 == 1 {
                    acc = acc.mul(self);
                }
            }
        }
        acc
    }

    /// The inverse (Fermat); zero maps to zero. Only tables use it.
    fn invert(self) -> Fe {
        self.pow(&P_MINUS_2_BE)
    }
}

/// An integer modulo n in Montgomery form, fully reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scalar([u64; 4]);

impl Scalar {
    /// From little-endian limbs known to be below n.
    fn from_limbs(l: [u64; 4]) -> Scalar {
        let mut out = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_to_montgomery(
            &mut out,
            &fs::fiat_p256_scalar_non_montgomery_domain_field_element(l),
        );
        Scalar(out.0)
    }

    /// The scalar whose big-endian encoding is `be`, if it is in [1, n-1]
    /// (the range of a signature's r and s).
    fn from_be_nonzero(be: &[u8; 32]) -> Option<(Scalar, [u64; 4])> {
        if *be >= N_BE || *be == [0; 32] {
            return None;
        }
        let plain = limbs(be);
        Some((Scalar::from_limbs(plain), plain))
    }

    /// A 256-bit hash as an integer modulo n (below 2n, so one subtraction
    /// at most).
    fn from_digest(be: &[u8; 32]) -> Scalar {
        let mut l = limbs(be);
        if *be >= N_BE {
            let n = limbs(&N_BE);
            let mut borrow = 0u8;
            for (a, b) in l.iter_mut().zip(n) {
                let (d, b1) = a.overflowing_sub(b);
                let (d, b2) = d.overflowing_sub(u64::from(borrow));
                *a = d;
                borrow = u8::from(b1 || b2);
            }
        }
        Scalar::from_limbs(l)
    }

    #[inline]
    fn mul(self, b: Scalar) -> Scalar {
        let mut out = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_mul(
            &mut out,
            &fs::fiat_p256_scalar_montgomery_domain_field_element(self.0),
            &fs::fiat_p256_scalar_montgomery_domain_field_element(b.0),
        );
        Scalar(out.0)
    }

    #[inline]
    fn sqr(self) -> Scalar {
        let mut out = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_square(
            &mut out,
            &fs::fiat_p256_scalar_montgomery_domain_field_element(self.0),
        );
        Scalar(out.0)
    }

    fn one() -> Scalar {
        let mut one = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_set_one(&mut one);
        Scalar(one.0)
    }

    /// The inverse of a nonzero scalar given by its little-endian limbs
    /// (below n). A variable-time safegcd ([`modinv`]) finds it in about a
    /// microsecond; the product is checked, so a wrong answer cannot pass,
    /// and Fermat's little theorem is the fallback.
    fn invert(self, plain: &[u64; 4]) -> Scalar {
        if let Some(words) = modinv::invert_vartime(plain, &modinv::Modulus::P256_ORDER)
            && limbs_below_n(&words)
        {
            let w = Scalar::from_limbs(words);
            if self.mul(w) == Scalar::one() {
                return w;
            }
        }
        self.invert_fermat()
    }

    /// The inverse by Fermat (`self^(n-2)`, 4-bit fixed window: 256
    /// squarings and at most 78 multiplications).
    fn invert_fermat(self) -> Scalar {
        let mut powers = [self; 16];
        powers[0] = Scalar::one();
        for i in 2..16 {
            powers[i] = powers[i - 1].mul(self);
        }
        let mut acc = powers[0];
        for byte in N_MINUS_2_BE {
            for nibble in [byte >> 4, byte & 15] {
                acc = acc.sqr().sqr().sqr().sqr();
                if nibble != 0 {
                    acc = acc.mul(powers[usize::from(nibble)]);
                }
            }
        }
        acc
    }

    /// Little-endian limbs of the integer (out of Montgomery form).
    fn to_limbs(self) -> [u64; 4] {
        let mut out = fs::fiat_p256_scalar_non_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_from_montgomery(
            &mut out,
            &fs::fiat_p256_scalar_montgomery_domain_field_element(self.0),
        );
        out.0
    }
}

/// The signed base-2^W digits of a scalar below 2^256, least significant
/// first: each in [-2^(W-1), 2^(W-1)], and `Σ d_i·2^(W·i)` equals the scalar.
/// The first `windows(W)` entries are the digits, the rest zero.
fn digits<const W: usize>(k: &[u64; 4]) -> [i16; MAX_WINDOWS] {
    const { assert!(W >= W_KEY && W < 16) };
    let mut out = [0i16; MAX_WINDOWS];
    let mut carry = 0i32;
    for (i, digit) in out.iter_mut().enumerate().take(windows(W)) {
        let bit = i * W;
        let word = bit / 64;
        let shift = bit % 64;
        let mut v = if word < 4 { k[word] >> shift } else { 0 };
        if shift + W > 64 && word + 1 < 4 {
            v |= k[word + 1] << (64 - shift);
        }
        // The mask keeps W bits, so the value fits an i32.
        let mut d = i32::try_from(v & ((1 << W) - 1)).unwrap_or(0) + carry;
        if d > (1 << (W - 1)) {
            d -= 1 << W;
            carry = 1;
        } else {
            carry = 0;
        }
        // |d| <= 2^(W-1) fits an i16.
        *digit = i16::try_from(d).unwrap_or(0);
    }
    debug_assert_eq!(carry, 0, "a scalar below 2^256 fits 257 bits of digits");
    out
}

/// A point in affine coordinates, never the point at infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Affine {
    x: Fe,
    y: Fe,
}

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³), or infinity.
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
    infinity: bool,
}

impl Jacobian {
    const INFINITY: Jacobian = Jacobian {
        x: Fe::ZERO,
        y: Fe::ZERO,
        z: Fe::ZERO,
        infinity: true,
    };

    fn from_affine(a: &Affine) -> Jacobian {
        Jacobian {
            x: a.x,
            y: a.y,
            z: Fe::one(),
            infinity: false,
        }
    }

    /// `self = 2·self` (`dbl-2001-b`, a = -3).
    fn double(&mut self) {
        if self.infinity {
            return;
        }
        if self.y.is_zero() {
            // Only a point of order 2 has y = 0; P-256 has none, but the
            // answer would be infinity.
            *self = Jacobian::INFINITY;
            return;
        }
        let delta = self.z.sqr();
        let gamma = self.y.sqr();
        let beta = self.x.mul(gamma);
        let t = self.x.sub(delta).mul(self.x.add(delta));
        let alpha = t.add(t).add(t);
        let beta4 = beta.add(beta).add(beta.add(beta));
        let x3 = alpha.sqr().sub(beta4.add(beta4));
        let z3 = self.y.add(self.z).sqr().sub(gamma).sub(delta);
        let gamma2 = gamma.sqr();
        let gamma8 = {
            let g2 = gamma2.add(gamma2);
            let g4 = g2.add(g2);
            g4.add(g4)
        };
        let y3 = alpha.mul(beta4.sub(x3)).sub(gamma8);
        *self = Jacobian {
            x: x3,
            y: y3,
            z: z3,
            infinity: false,
        };
    }

    /// `self = self + a` (`madd-2007-bl`), including the cases the formula
    /// does not cover: `self` at infinity, `self = a` and `self = -a`.
    fn add_affine(&mut self, a: &Affine) {
        if self.infinity {
            *self = Jacobian::from_affine(a);
            return;
        }
        let z1z1 = self.z.sqr();
        let u2 = a.x.mul(z1z1);
        let s2 = a.y.mul(self.z).mul(z1z1);
        let h = u2.sub(self.x);
        let s = s2.sub(self.y);
        if h.is_zero() {
            if s.is_zero() {
                self.double();
            } else {
                *self = Jacobian::INFINITY;
            }
            return;
        }
        let hh = h.sqr();
        let i = {
            let hh2 = hh.add(hh);
            hh2.add(hh2)
        };
        let j = h.mul(i);
        let r = s.add(s);
        let v = self.x.mul(i);
        let x3 = r.sqr().sub(j).sub(v.add(v));
        let yj = self.y.mul(j);
        let y3 = r.mul(v.sub(x3)).sub(yj.add(yj));
        let z3 = self.z.add(h).sqr().sub(z1z1).sub(hh);
        *self = Jacobian {
            x: x3,
            y: y3,
            z: z3,
            infinity: false,
        };
    }

    /// `self = self + p`, or `self - p` when `negative`.
    #[inline]
    fn add_signed(&mut self, p: &Affine, negative: bool) {
        if !negative {
            self.add_affine(p);
        } else {
            self.add_affine(&Affine {
                x: p.x,
                y: p.y.neg(),
            });
        }
    }
}

/// Converts points to affine with one inversion (Montgomery's trick).
/// `None` if any of them is the point at infinity.
fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    if points.iter().any(|p| p.infinity || p.z.is_zero()) {
        return None;
    }
    // prefix[i] = z_0 · … · z_i
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::one();
    for p in points {
        acc = acc.mul(p.z);
        prefix.push(acc);
    }
    let mut inv = acc.invert();
    let mut out = vec![
        Affine {
            x: Fe::ZERO,
            y: Fe::ZERO
        };
        points.len()
    ];
    for i in (0..points.len()).rev() {
        // inv = (z_0 · … · z_i)^-1
        let zinv = if i == 0 { inv } else { inv.mul(prefix[i - 1]) };
        inv = inv.mul(points[i].z);
        let zinv2 = zinv.sqr();
        out[i] = Affine {
            x: points[i].x.mul(zinv2),
            y: points[i].y.mul(zinv2.mul(zinv)),
        };
    }
    Some(out)
}

/// The multiples `d·2^(W·i)·P` for every window i and d in 1..=2^(W-1),
/// window by window.
#[derive(Debug)]
struct Table<const W: usize>(Box<[Affine]>);

impl<const W: usize> Table<W> {
    const ROW: usize = row_len(W);

    fn new(p: &Affine) -> Option<Self> {
        let mut entries = Vec::with_capacity(windows(W) * Self::ROW);
        let mut base = *p;
        let mut row = Vec::with_capacity(Self::ROW + 1);
        for _ in 0..windows(W) {
            row.clear();
            let mut acc = Jacobian::from_affine(&base);
            row.push(acc);
            for _ in 1..Self::ROW {
                acc.add_affine(&base);
                row.push(acc);
            }
            // The next window's base: 2^W·base = 2·(2^(W-1)·base).
            acc.double();
            row.push(acc);
            let affine = batch_to_affine(&row)?;
            entries.extend_from_slice(&affine[..Self::ROW]);
            base = affine[Self::ROW];
        }
        Some(Table(entries.into_boxed_slice()))
    }

    /// The entry a digit of a window adds, `|d|·2^(W·window)·P` (`None`
    /// for a zero digit).
    fn entry(&self, window: usize, d: i16) -> Option<&Affine> {
        let index = usize::from(d.unsigned_abs()).checked_sub(1)?;
        self.0
            .get(window * Self::ROW..(window + 1) * Self::ROW)?
            .get(index)
    }

    /// `acc = acc + k·P` for a scalar k below 2^256.
    #[cfg(test)]
    fn mul_add(&self, k: &[u64; 4], acc: &mut Jacobian) {
        self.add_digits(&digits::<W>(k), acc);
    }

    /// `acc = acc + k·P` from the digits of k.
    fn add_digits(&self, digits: &[i16; MAX_WINDOWS], acc: &mut Jacobian) {
        for (i, &d) in digits.iter().take(windows(W)).enumerate() {
            if let Some(p) = self.entry(i, d) {
                acc.add_signed(p, d < 0);
            }
        }
    }

    /// Reads the first and last word of every entry the digits will add,
    /// all at once, before any addition needs one. The entries of a wide
    /// table are mostly not in the core's caches (a verification reads 22
    /// of the generator table's 45,000); read one by one, each addition
    /// would wait for its entry, while these reads depend on nothing and
    /// the core has them all under way together. Returns a value made of
    /// what was read, for `black_box`, so that the reads stay.
    fn touch(&self, digits: &[i16; MAX_WINDOWS]) -> u64 {
        let mut sink = 0;
        for (i, &d) in digits.iter().take(windows(W)).enumerate() {
            if let Some(p) = self.entry(i, d) {
                sink ^= p.x.0[0] ^ p.y.0[3];
            }
        }
        sink
    }
}

/// The generator's table, made on first use (see [`W_GEN`]; [`Es256Key::new`]
/// makes it, so that no verification waits for it).
static GENERATOR: LazyLock<Option<Table<W_GEN>>> = LazyLock::new(|| {
    Table::new(&Affine {
        x: Fe::constant(&GX_BE),
        y: Fe::constant(&GY_BE),
    })
});

/// Checks an uncompressed SEC 1 point (`04 || X || Y`) against the curve.
fn decode_point(bytes: &[u8]) -> Option<Affine> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 4 || rest.len() != 64 {
        return None;
    }
    let (xb, yb) = rest.split_at(32);
    let x = Fe::from_be(xb.try_into().ok()?)?;
    let y = Fe::from_be(yb.try_into().ok()?)?;
    // y² = x³ - 3x + b
    let three_x = x.add(x).add(x);
    let rhs = x.sqr().mul(x).sub(three_x).add(Fe::constant(&B_BE));
    (y.sqr() == rhs).then_some(Affine { x, y })
}

/// A P-256 public key ready for fast ES256 verification: its table of
/// multiples (37 windows of 64 affine points, about 150 KB).
#[derive(Debug)]
pub struct Es256Key {
    table: Table<W_KEY>,
}

impl Es256Key {
    /// Makes the key's table from an uncompressed SEC 1 point (what a
    /// certificate's subjectPublicKey holds for P-256). `None` if the bytes
    /// are not a point of the curve. Costs one or two milliseconds.
    pub fn new(public_point: &[u8]) -> Option<Es256Key> {
        let q = decode_point(public_point)?;
        // The generator's table too, the first time: not at the first
        // verification, which would wait for it.
        LazyLock::force(&GENERATOR);
        Some(Es256Key {
            table: Table::new(&q)?,
        })
    }

    /// Whether `signature` (r || s, 32 octets each, as JWS carries it) is a
    /// valid ES256 signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some(generator) = GENERATOR.as_ref() else {
            return false;
        };
        let Some((r_be, s_be)) = signature
            .split_first_chunk::<32>()
            .and_then(|(r, s)| Some((r, <&[u8; 32]>::try_from(s).ok()?)))
        else {
            return false;
        };
        let (Some((r, _)), Some((s, s_plain))) =
            (Scalar::from_be_nonzero(r_be), Scalar::from_be_nonzero(s_be))
        else {
            return false;
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let Ok(hash) = <&[u8; 32]>::try_from(digest.as_ref()) else {
            return false;
        };
        let e = Scalar::from_digest(hash);
        let w = s.invert(&s_plain);
        let u1 = digits::<W_GEN>(&e.mul(w).to_limbs());
        let u2 = digits::<W_KEY>(&r.mul(w).to_limbs());
        std::hint::black_box(generator.touch(&u1) ^ self.table.touch(&u2));
        let mut acc = Jacobian::INFINITY;
        generator.add_digits(&u1, &mut acc);
        self.table.add_digits(&u2, &mut acc);
        x_matches(&acc, r_be)
    }
}

/// Whether `x(R) mod n = r` (r is below n): X = r·Z², or X = (r + n)·Z² when
/// r + n is still below p. Infinity matches nothing.
fn x_matches(acc: &Jacobian, r_be: &[u8; 32]) -> bool {
    if acc.infinity {
        return false;
    }
    let z2 = acc.z.sqr();
    let Some(r) = Fe::from_be(r_be) else {
        return false;
    };
    if acc.x == r.mul(z2) {
        return true;
    }
    *r_be < P_MINUS_N_BE && acc.x == r.add(Fe::constant(&N_BE)).mul(z2)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, KeyPair as _};

    fn ring_verify(point: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(msg, sig)
            .is_ok()
    }

    /// A fresh P-256 key pair.
    pub(crate) fn key_pair(rng: &SystemRandom) -> EcdsaKeyPair {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, rng).unwrap();
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            rng,
        )
        .unwrap()
    }

    fn scalar_be(limbs: [u64; 4]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, l) in limbs.iter().enumerate() {
            out[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&l.to_be_bytes());
        }
        out
    }

    /// Affine x of a Jacobian point, big-endian, for comparisons.
    fn affine_x(p: &Jacobian) -> Option<[u8; 32]> {
        let a = batch_to_affine(&[*p])?;
        let mut out = fp::fiat_p256_non_montgomery_domain_field_element([0; 4]);
        fp::fiat_p256_from_montgomery(
            &mut out,
            &fp::fiat_p256_montgomery_domain_field_element(a[0].x.0),
        );
        Some(scalar_be(out.0))
    }

    /// `k·P` by plain double-and-add over the bits, the reference the
    /// tables are checked against.
    fn mul_plain(p: &Affine, k: &[u8; 32]) -> Jacobian {
        let mut acc = Jacobian::INFINITY;
        for byte in k {
            for bit in (0..8).rev() {
                acc.double();
                if (byte >> bit) & 1 == 1 {
                    acc.add_affine(p);
                }
            }
        }
        acc
    }

    fn generator() -> Affine {
        Affine {
            x: Fe::constant(&GX_BE),
            y: Fe::constant(&GY_BE),
        }
    }

    #[test]
    fn constants_hold() {
        // G is on the curve; n·G is infinity and (n-1)·G = -G.
        let g = generator();
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&GX_BE);
        sec1.extend_from_slice(&GY_BE);
        assert_eq!(decode_point(&sec1), Some(g));
        assert!(mul_plain(&g, &N_BE).infinity);
        let mut n_minus_1 = N_BE;
        n_minus_1[31] -= 1;
        assert_eq!(affine_x(&mul_plain(&g, &n_minus_1)), Some(GX_BE));
        // p - n as written is p - n.
        let (p, n, d) = (limbs(&P_BE), limbs(&N_BE), limbs(&P_MINUS_N_BE));
        let mut borrow = false;
        let mut diff = [0u64; 4];
        for i in 0..4 {
            let (x, b1) = p[i].overflowing_sub(n[i]);
            let (x, b2) = x.overflowing_sub(u64::from(borrow));
            diff[i] = x;
            borrow = b1 || b2;
        }
        assert_eq!(diff, d);
        // Field and scalar inverses.
        let x = Fe::constant(&GX_BE);
        assert_eq!(x.mul(x.invert()), Fe::one());
        let (s, plain) = Scalar::from_be_nonzero(&GY_BE).unwrap();
        assert_eq!(s.mul(s.invert(&plain)), Scalar::one());
        assert_eq!(s.invert_fermat(), s.invert(&plain));
        assert!(limbs_below_n(&limbs(&N_MINUS_2_BE)));
        assert_eq!(
            crypto_bigint::U256::from_be_slice(&N_BE).to_words(),
            limbs(&N_BE)
        );
        // A digest of n or more is reduced (one in 2^32 is).
        assert_eq!(
            Scalar::from_digest(&[0xff; 32]),
            Scalar::from_limbs(limbs(&hex32(
                "00000000ffffffff00000000000000004319055258e8617b0c46353d039cdaae"
            )))
        );
        assert_eq!(
            Scalar::from_digest(&hex32(
                "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632556"
            )),
            Scalar::from_limbs([5, 0, 0, 0])
        );
        assert!(!limbs_below_n(&limbs(&N_BE)));
    }

    fn fiat_mul(a: Fe, b: Fe) -> Fe {
        let mut out = fp::fiat_p256_montgomery_domain_field_element([0; 4]);
        fp::fiat_p256_mul(
            &mut out,
            &fp::fiat_p256_montgomery_domain_field_element(a.0),
            &fp::fiat_p256_montgomery_domain_field_element(b.0),
        );
        Fe(out.0)
    }

    /// The multiplication and squaring written for p's shape give fiat's
    /// answers: on random elements, and on elements whose words are all ones
    /// or all zeros (the carries at their longest).
    #[test]
    fn multiplication_agrees_with_fiat() {
        let p = limbs(&P_BE);
        let mut edges = vec![[0u64; 4], [1, 0, 0, 0], [p[0] - 1, p[1], p[2], p[3]]];
        for mask in 0u32..16 {
            let l: [u64; 4] =
                std::array::from_fn(|i| if mask & (1 << i) != 0 { u64::MAX } else { 0 });
            for tweak in [0u64, 1, 1 << 32, 1 << 63, u64::MAX >> 32] {
                let mut v = l;
                v[0] ^= tweak;
                v[2] ^= tweak.rotate_left(17);
                edges.push(v);
            }
        }
        // Montgomery-form elements are any value below p.
        let below_p = |v: [u64; 4]| {
            let mut be = [0u8; 32];
            for (i, w) in v.iter().enumerate() {
                be[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&w.to_be_bytes());
            }
            be < P_BE
        };
        let mut xs: Vec<Fe> = edges.into_iter().filter(|v| below_p(*v)).map(Fe).collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        while xs.len() < 400 {
            let v = [next(), next(), next(), next()];
            if below_p(v) {
                xs.push(Fe(v));
            }
        }
        for a in &xs {
            assert_eq!(a.sqr(), fiat_mul(*a, *a), "{a:x?}");
            for b in &xs {
                assert_eq!(a.mul(*b), fiat_mul(*a, *b), "{a:x?} {b:x?}");
            }
        }
    }

    /// An `x(R)` of n or more (about one signature in 2^128) matches the
    /// `r = x(R) - n` it reduces to.
    #[test]
    fn an_x_above_n_matches_its_reduction() {
        // (p + 1) / 4: square roots, as p = 3 mod 4.
        let sqrt_exp = hex32("3fffffffc0000000400000000000000000000000400000000000000000000000");
        let n = limbs(&N_BE);
        for t in 1u64..64 {
            let mut x_limbs = n;
            x_limbs[0] += t;
            let x_be = scalar_be(x_limbs);
            let x = Fe::from_be(&x_be).unwrap();
            let rhs = x.sqr().mul(x).sub(x.add(x).add(x)).add(Fe::constant(&B_BE));
            let y = rhs.pow(&sqrt_exp);
            if y.sqr() != rhs {
                continue;
            }
            // The same point with Z = 7.
            let z = Fe::constant(&scalar_be([7, 0, 0, 0]));
            let z2 = z.sqr();
            let r = Jacobian {
                x: x.mul(z2),
                y: y.mul(z2.mul(z)),
                z,
                infinity: false,
            };
            assert!(x_matches(&r, &scalar_be([t, 0, 0, 0])));
            assert!(!x_matches(&r, &scalar_be([t + 1, 0, 0, 0])));
            assert!(!x_matches(&Jacobian::INFINITY, &scalar_be([t, 0, 0, 0])));
            return;
        }
        panic!("no point with a small x above n");
    }

    /// Checks that the `W`-bit digits of scalars add up to them again.
    fn check_digits<const W: usize>() {
        for k in [
            [0u64; 4],
            [1, 0, 0, 0],
            [u64::MAX; 4],
            limbs(&N_BE),
            [0x4040_4040_4040_4040, 0x7f7f_7f7f_7f7f_7f7f, 0x3f, 1 << 63],
            [
                0x0800_0800_0800_0800,
                0xfff7_ff7f_f7ff_7ff7,
                0x07ff,
                1 << 63,
            ],
        ] {
            let d = digits::<W>(&k);
            assert!(d[windows(W)..].iter().all(|&x| x == 0));
            // Σ d_i·2^(W·i) by Horner's rule, in 320-bit two's complement.
            let mut acc = [0u64; 5];
            for digit in d[..windows(W)].iter().rev() {
                assert!(digit.unsigned_abs() <= 1 << (W - 1));
                for j in (1..5).rev() {
                    acc[j] = (acc[j] << W) | (acc[j - 1] >> (64 - W));
                }
                acc[0] <<= W;
                let low = i64::from(*digit) as u64;
                let high = if *digit < 0 { u64::MAX } else { 0 };
                let mut carry = false;
                for (j, limb) in acc.iter_mut().enumerate() {
                    let addend = if j == 0 { low } else { high };
                    let (s1, o1) = limb.overflowing_add(addend);
                    let (s2, o2) = s1.overflowing_add(u64::from(carry));
                    *limb = s2;
                    carry = o1 || o2;
                }
            }
            assert_eq!(acc, [k[0], k[1], k[2], k[3], 0], "W={W} {k:x?}");
        }
    }

    #[test]
    fn digits_recompose_the_scalar() {
        check_digits::<W_KEY>();
        check_digits::<W_GEN>();
    }

    /// Checks a `W`-bit table of `g` against double-and-add.
    fn check_table<const W: usize>(table: &Table<W>, g: &Affine) {
        for k in [
            hex32("0000000000000000000000000000000000000000000000000000000000000001"),
            hex32("0000000000000000000000000000000000000000000000000000000000000040"),
            hex32("0000000000000000000000000000000000000000000000000000000000000041"),
            hex32("0000000000000000000000000000000000000000000000000000000000000800"),
            hex32("0000000000000000000000000000000000000000000000000000000000000801"),
            hex32("0000000000000000000000000000000000000000000000000000000000fff801"),
            GY_BE,
            P_MINUS_N_BE,
            N_MINUS_2_BE,
        ] {
            let mut acc = Jacobian::INFINITY;
            table.mul_add(&limbs(&k), &mut acc);
            assert_eq!(affine_x(&acc), affine_x(&mul_plain(g, &k)), "W={W} {k:x?}");
        }
    }

    #[test]
    fn tables_agree_with_double_and_add() {
        let g = generator();
        check_table(&Table::<W_KEY>::new(&g).unwrap(), &g);
        let shared = GENERATOR.as_ref().unwrap();
        check_table(shared, &g);
        assert_eq!(shared.0.len(), windows(W_GEN) * row_len(W_GEN));
    }

    #[test]
    fn agrees_with_ring_on_valid_and_tampered_signatures() {
        let rng = SystemRandom::new();
        for _ in 0..4 {
            let kp = key_pair(&rng);
            let point = kp.public_key().as_ref();
            let key = Es256Key::new(point).unwrap();
            for i in 0..64u32 {
                let msg = format!("eyJhbGciOiJFUzI1NiJ9.payload-{i}");
                let sig = kp.sign(&rng, msg.as_bytes()).unwrap();
                let sig = sig.as_ref();
                assert!(ring_verify(point, msg.as_bytes(), sig));
                assert!(key.verify(msg.as_bytes(), sig), "valid signature {i}");
                // Another message, a flipped bit in r, in s, a swapped r/s.
                assert!(!key.verify(format!("{msg}x").as_bytes(), sig));
                let mut bad = sig.to_vec();
                bad[(i as usize) % 32] ^= 1 << (i % 8);
                assert!(!key.verify(msg.as_bytes(), &bad));
                let mut bad = sig.to_vec();
                bad[32 + (i as usize) % 32] ^= 1 << (i % 8);
                assert!(!key.verify(msg.as_bytes(), &bad));
                let mut swapped = sig[32..].to_vec();
                swapped.extend_from_slice(&sig[..32]);
                assert_eq!(
                    key.verify(msg.as_bytes(), &swapped),
                    ring_verify(point, msg.as_bytes(), &swapped)
                );
            }
        }
    }

    #[test]
    fn out_of_range_and_malformed_signatures_fail() {
        let rng = SystemRandom::new();
        let kp = key_pair(&rng);
        let key = Es256Key::new(kp.public_key().as_ref()).unwrap();
        let msg = b"m";
        let sig = kp.sign(&rng, msg).unwrap().as_ref().to_vec();
        assert!(key.verify(msg, &sig));
        // r or s of zero, n, or all ones; wrong lengths.
        for bad_half in [[0u8; 32], N_BE, [0xff; 32]] {
            let mut bad = bad_half.to_vec();
            bad.extend_from_slice(&sig[32..]);
            assert!(!key.verify(msg, &bad));
            let mut bad = sig[..32].to_vec();
            bad.extend_from_slice(&bad_half);
            assert!(!key.verify(msg, &bad));
        }
        assert!(!key.verify(msg, &sig[..63]));
        assert!(!key.verify(msg, &[sig.as_slice(), &[0]].concat()));
        assert!(!key.verify(msg, &[]));
    }

    #[test]
    fn malformed_points_are_refused() {
        let rng = SystemRandom::new();
        let kp = key_pair(&rng);
        let good = kp.public_key().as_ref().to_vec();
        assert!(Es256Key::new(&good).is_some());
        let mut off_curve = good.clone();
        off_curve[64] ^= 1;
        assert!(Es256Key::new(&off_curve).is_none());
        let mut compressed = good.clone();
        compressed[0] = 2;
        assert!(Es256Key::new(&compressed).is_none());
        assert!(Es256Key::new(&good[..64]).is_none());
        let mut x_is_p = vec![4u8];
        x_is_p.extend_from_slice(&P_BE);
        x_is_p.extend_from_slice(&good[33..]);
        assert!(Es256Key::new(&x_is_p).is_none());
    }

    /// Signatures by the keys 1 (Q = G) and n-1 (Q = -G) make the sum
    /// `u1·G + u2·Q` add a point to itself or to its negation; the
    /// exceptional branches must give the exact answer.
    #[test]
    fn exceptional_additions_are_exact() {
        let rng = SystemRandom::new();
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut n_minus_1 = N_BE;
        n_minus_1[31] -= 1;
        for private in [one, n_minus_1] {
            let q = mul_plain(&generator(), &private);
            let q = batch_to_affine(&[q]).unwrap()[0];
            let mut point = vec![4u8];
            let mut x = fp::fiat_p256_non_montgomery_domain_field_element([0; 4]);
            fp::fiat_p256_from_montgomery(
                &mut x,
                &fp::fiat_p256_montgomery_domain_field_element(q.x.0),
            );
            let mut y = fp::fiat_p256_non_montgomery_domain_field_element([0; 4]);
            fp::fiat_p256_from_montgomery(
                &mut y,
                &fp::fiat_p256_montgomery_domain_field_element(q.y.0),
            );
            point.extend_from_slice(&scalar_be(x.0));
            point.extend_from_slice(&scalar_be(y.0));
            let kp = EcdsaKeyPair::from_private_key_and_public_key(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &private,
                &point,
                &rng,
            )
            .unwrap();
            let key = Es256Key::new(&point).unwrap();
            for i in 0..32 {
                let msg = format!("exceptional {i}");
                let sig = kp.sign(&rng, msg.as_bytes()).unwrap();
                assert!(key.verify(msg.as_bytes(), sig.as_ref()));
            }
            // With Q = ±G, u1·G + u2·Q = (u1 ± u2)·G. Scalars chosen so
            // that the per-window sums meet equal or opposite points: both
            // tables with the same windows (the shared generator table's
            // are wider, so its sums meet them less often; checked too).
            let table = Table::<W_KEY>::new(&q).unwrap();
            let g = Table::<W_KEY>::new(&generator()).unwrap();
            let shared = GENERATOR.as_ref().unwrap();
            for k in [GX_BE, P_MINUS_N_BE, N_MINUS_2_BE] {
                let d = limbs(&k);
                let mut acc = Jacobian::INFINITY;
                g.mul_add(&d, &mut acc);
                table.mul_add(&d, &mut acc);
                let mut wide = Jacobian::INFINITY;
                shared.mul_add(&d, &mut wide);
                table.mul_add(&d, &mut wide);
                assert_eq!(affine_x(&acc), affine_x(&wide));
                assert_eq!(acc.infinity, wide.infinity);
                if private == one {
                    // 2k·G
                    let mut twice = mul_plain(&generator(), &k);
                    twice.double();
                    assert_eq!(affine_x(&acc), affine_x(&twice));
                } else {
                    assert!(acc.infinity, "k·G + k·(-G) is infinity");
                }
            }
        }
    }
}
