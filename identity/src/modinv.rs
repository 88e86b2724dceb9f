//! Variable-time inverse modulo a 256-bit odd modulus (Bernstein–Yang
//! safegcd), for the inverse of `s` in an ES256 verification.
//!
//! crypto-bigint's `invert_odd_mod_vartime` is generic over the number of
//! limbs and cost about 16 % of a PASSporT check (3.8 µs an inverse modulo
//! the P-256 order; this one takes 1.1 µs). This one is written for four
//! 64-bit limbs only, after the structure of libsecp256k1's
//! `modinv64_var` (described in its `doc/safegcd_implementation.md` and in
//! Bernstein and Yang, "Fast constant-time gcd computation and modular
//! inversion", 2019):
//!
//! - Numbers are held as five signed 62-bit limbs (`value = Σ v[i]·2^(62·i)`,
//!   limbs 0 to 3 in `[0, 2^62)` once normalised, the top one signed), so
//!   that a 64×64-bit product plus a few of them fit an `i128` with room
//!   for the sign.
//! - Divsteps are done 62 at a time on the low 64 bits of `f` and `g` only
//!   ([`divsteps_62`]), skipping runs of zero bits of `g` at once and
//!   cancelling up to 6 bits of `g` per odd step; the 62 steps are gathered
//!   in a 2×2 matrix which is then applied to the full `f` and `g`
//!   ([`update_fg`], whose length shrinks with them) and to the Bézout
//!   coefficients `d` and `e` ([`update_de`], which keeps them in
//!   `(-2m, m)` by adding a multiple of `m` that makes the division by
//!   `2^62` exact).
//! - `d·x ≡ f (mod m)` throughout, so when `g` reaches 0, `f` is
//!   `±gcd(x, m)` and, if that is ±1, `±d` is the inverse, which
//!   [`normalize`] brings into `[0, m)`.
//!
//! Everything here takes time that depends on the inputs: use it for public
//! values only (verification), never for a signing nonce or a private key.

/// The low 62 bits of a limb.
const M62: u64 = u64::MAX >> 2;

/// A number in signed 62-bit limbs: `Σ v[i]·2^(62·i)`.
type Signed62 = [i64; 5];

/// An odd modulus, prepared for [`invert_vartime`]: its signed 62-bit limbs
/// and its inverse modulo `2^62` (which makes the correction in
/// [`update_de`] a single multiplication).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Modulus {
    /// The modulus in signed 62-bit limbs (all limbs non-negative).
    limbs: Signed62,
    /// `m^-1 mod 2^62`.
    inv62: u64,
}

impl Modulus {
    /// The order n of the P-256 group.
    pub(crate) const P256_ORDER: Modulus = Modulus::new(&[
        0xf3b9_cac2_fc63_2551,
        0xbce6_faad_a717_9e84,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_0000_0000,
    ]);

    /// Prepares the odd modulus `m` (little-endian 64-bit limbs).
    ///
    /// # Panics
    ///
    /// If `m` is even (at compile time when the result is a constant).
    pub(crate) const fn new(m: &[u64; 4]) -> Modulus {
        assert!(m[0] & 1 == 1, "the modulus must be odd");
        // Newton's iteration: for odd m, m·m ≡ 1 (mod 8), so m is its own
        // inverse modulo 2^3, and each step doubles the correct bits.
        let mut inv = m[0];
        let mut i = 0;
        while i < 5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m[0].wrapping_mul(inv)));
            i += 1;
        }
        Modulus {
            limbs: to_signed62(m),
            inv62: inv & M62,
        }
    }
}

/// The inverse of `x` modulo the odd modulus `m` (`x` in little-endian
/// 64-bit limbs), in `[0, m)`, or `None` when `gcd(x, m) != 1` (`x = 0`
/// and multiples of `m` included). `x` need not be reduced below `m`.
///
/// Variable time: for public values only.
pub(crate) fn invert_vartime(x: &[u64; 4], m: &Modulus) -> Option<[u64; 4]> {
    if *x == [0; 4] {
        return None;
    }
    // Invariants: d·x ≡ f and e·x ≡ g (mod m) (update_de applies to d and
    // e, modulo m, the same matrix as update_fg to f and g).
    let mut d: Signed62 = [0; 5];
    let mut e: Signed62 = [1, 0, 0, 0, 0];
    let mut f = m.limbs;
    let mut g = to_signed62(x);
    let mut len = 5;
    // eta = -delta, with delta = 1 at the start as in the paper's divstep.
    let mut eta: i64 = -1;
    // Bernstein and Yang bound the divsteps that bring a 256-bit g to 0
    // (under 750, that is 13 batches); the cap only makes sure that a
    // mistake here could never spin: the caller then inverts another way.
    for _ in 0..MAX_BATCHES {
        let t;
        (eta, t) = divsteps_62(eta, f[0] as u64, g[0] as u64);
        update_de(&mut d, &mut e, &t, m);
        update_fg(len, &mut f, &mut g, &t);
        if g[0] == 0 && g[1..len].iter().all(|&l| l == 0) {
            return finish(&mut d, &f[..len], m);
        }
        // Drop the top limb when it holds nothing but the sign in both f
        // and g, folding that sign into the limb below.
        let (fn_, gn) = (f[len - 1], g[len - 1]);
        if len > 1 && (fn_ ^ (fn_ >> 63)) == 0 && (gn ^ (gn >> 63)) == 0 {
            f[len - 2] |= fn_ << 62;
            g[len - 2] |= gn << 62;
            len -= 1;
        }
    }
    None
}

/// Batches of 62 divsteps [`invert_vartime`] does at most (twice the bound).
const MAX_BATCHES: usize = 26;

/// The inverse from `d` once `g` is 0 and `f = ±gcd(x, m)`: it exists only
/// if that is ±1.
fn finish(d: &mut Signed62, f: &[i64], m: &Modulus) -> Option<[u64; 4]> {
    let negative = if is_one(f) {
        false
    } else if is_minus_one(f) {
        true
    } else {
        return None;
    };
    normalize(d, negative, m);
    Some(from_signed62(d))
}

/// The transition matrix of 62 divsteps, scaled by `2^62`:
/// `2^62·[f', g'] = [[u, v], [q, r]]·[f, g]`. Each entry is at most `2^62`
/// in absolute value, and so are `|u| + |v|` and `|q| + |r|`.
#[derive(Clone, Copy, Debug)]
struct Trans {
    /// Coefficient of `f` in the new `f`.
    u: i64,
    /// Coefficient of `g` in the new `f`.
    v: i64,
    /// Coefficient of `f` in the new `g`.
    q: i64,
    /// Coefficient of `g` in the new `g`.
    r: i64,
}

/// Performs 62 divsteps on the low 64 bits of `f` (odd) and `g`, returning
/// the new `eta` (`-delta`) and the transition matrix.
///
/// Runs of zero bits at the bottom of `g` are handled with one shift each,
/// and when `g` is odd, as many of its low bits as possible (at most 6,
/// `eta + 1` and the steps left) are cancelled at once by adding `w·f`,
/// with `w = -g/f` modulo that power of two. Arithmetic on the 64-bit
/// truncations wraps; the low bits are exact, and the matrix entries fit.
fn divsteps_62(mut eta: i64, f0: u64, g0: u64) -> (i64, Trans) {
    // The matrix, as wrapping 64-bit values (it ends within ±2^62).
    let (mut u, mut v, mut q, mut r) = (1u64, 0u64, 0u64, 1u64);
    let (mut f, mut g) = (f0, g0);
    let mut i: u32 = 62;
    loop {
        // Halve g as many times as it has trailing zeros (at most i): each
        // halving is one divstep, which doubles f's row relative to g's.
        let zeros = (g | (u64::MAX << i)).trailing_zeros();
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        eta -= i64::from(zeros);
        i -= zeros;
        if i == 0 {
            break;
        }
        // g is odd now. When eta < 0 (delta > 0), the divstep swaps f and
        // g and negates the new g.
        if eta < 0 {
            eta = -eta;
            (f, g) = (g, f.wrapping_neg());
            (u, q) = (q, u.wrapping_neg());
            (v, r) = (r, v.wrapping_neg());
        }
        // Cancel the low `limit` bits of g with a multiple of f. eta + 1
        // bounds it: past that many halvings eta would turn negative and
        // the next step swap.
        let limit = (eta + 1).min(i64::from(i)).min(6);
        let mask = (1u64 << limit) - 1;
        // f·(f² - 2) ≡ -f^-1 (mod 64) for odd f (one Newton step from
        // f^-1 ≡ f mod 8), so w = -g·f^-1 modulo 2^limit.
        let w = f
            .wrapping_mul(g)
            .wrapping_mul(f.wrapping_mul(f).wrapping_sub(2))
            & mask;
        g = g.wrapping_add(f.wrapping_mul(w));
        q = q.wrapping_add(u.wrapping_mul(w));
        r = r.wrapping_add(v.wrapping_mul(w));
    }
    (
        eta,
        Trans {
            u: u as i64,
            v: v as i64,
            q: q as i64,
            r: r as i64,
        },
    )
}

/// Applies `t / 2^62` to `(d, e)` modulo `m`: `d' ≡ (u·d + v·e)/2^62` and
/// `e' ≡ (q·d + r·e)/2^62`, with `d, e` in `(-2m, m)` before and after.
///
/// A multiple of `m` is added to each product to make its low 62 bits zero,
/// so the division is an exact shift. Starting that multiple at `u` or `v`
/// (`q` or `r`) for each negative input is what keeps the result in range.
fn update_de(d: &mut Signed62, e: &mut Signed62, t: &Trans, m: &Modulus) {
    let Trans { u, v, q, r } = *t;
    let (sd, se) = (d[4] >> 63, e[4] >> 63);
    let mut md = (u & sd) + (v & se);
    let mut me = (q & sd) + (r & se);
    let mut cd = i128::from(u) * i128::from(d[0]) + i128::from(v) * i128::from(e[0]);
    let mut ce = i128::from(q) * i128::from(d[0]) + i128::from(r) * i128::from(e[0]);
    // Make md, me such that the low 62 bits of cd + m·md and ce + m·me are 0.
    md -= (m.inv62.wrapping_mul(cd as u64).wrapping_add(md as u64) & M62) as i64;
    me -= (m.inv62.wrapping_mul(ce as u64).wrapping_add(me as u64) & M62) as i64;
    cd += i128::from(m.limbs[0]) * i128::from(md);
    ce += i128::from(m.limbs[0]) * i128::from(me);
    debug_assert_eq!(cd as u64 & M62, 0);
    debug_assert_eq!(ce as u64 & M62, 0);
    cd >>= 62;
    ce >>= 62;
    for k in 1..5 {
        cd += i128::from(u) * i128::from(d[k])
            + i128::from(v) * i128::from(e[k])
            + i128::from(m.limbs[k]) * i128::from(md);
        ce += i128::from(q) * i128::from(d[k])
            + i128::from(r) * i128::from(e[k])
            + i128::from(m.limbs[k]) * i128::from(me);
        d[k - 1] = (cd as u64 & M62) as i64;
        e[k - 1] = (ce as u64 & M62) as i64;
        cd >>= 62;
        ce >>= 62;
    }
    d[4] = cd as i64;
    e[4] = ce as i64;
}

/// Applies `t / 2^62` to the low `len` limbs of `f` and `g` (which are
/// exact: the higher limbs are sign only). The division is exact by
/// construction of `t`.
fn update_fg(len: usize, f: &mut Signed62, g: &mut Signed62, t: &Trans) {
    let Trans { u, v, q, r } = *t;
    let mut cf = i128::from(u) * i128::from(f[0]) + i128::from(v) * i128::from(g[0]);
    let mut cg = i128::from(q) * i128::from(f[0]) + i128::from(r) * i128::from(g[0]);
    debug_assert_eq!(cf as u64 & M62, 0);
    debug_assert_eq!(cg as u64 & M62, 0);
    cf >>= 62;
    cg >>= 62;
    for k in 1..len {
        cf += i128::from(u) * i128::from(f[k]) + i128::from(v) * i128::from(g[k]);
        cg += i128::from(q) * i128::from(f[k]) + i128::from(r) * i128::from(g[k]);
        f[k - 1] = (cf as u64 & M62) as i64;
        g[k - 1] = (cg as u64 & M62) as i64;
        cf >>= 62;
        cg >>= 62;
    }
    f[len - 1] = cf as i64;
    g[len - 1] = cg as i64;
}

/// Whether the signed 62-bit number `a` (lower limbs in `[0, 2^62)`) is 1.
fn is_one(a: &[i64]) -> bool {
    a[0] == 1 && a[1..].iter().all(|&l| l == 0)
}

/// Whether the signed 62-bit number `a` (lower limbs in `[0, 2^62)`) is -1:
/// all lower limbs `2^62 - 1` and the top one -1.
fn is_minus_one(a: &[i64]) -> bool {
    let (low, top) = a.split_at(a.len() - 1);
    top[0] == -1 && low.iter().all(|&l| l == M62 as i64)
}

/// Brings `r` from `(-2m, m)` to `[0, m)`, negating it first (modulo m)
/// when `negate` is set (that is, when the final `f` was -1).
fn normalize(r: &mut Signed62, negate: bool, m: &Modulus) {
    // (-2m, m) → (-m, m) → negated if asked, still (-m, m).
    if r[4] < 0 {
        add_limbs(r, &m.limbs);
    }
    if negate {
        for l in r.iter_mut() {
            *l = -*l;
        }
    }
    carry(r);
    // (-m, m) → [0, m).
    if r[4] < 0 {
        add_limbs(r, &m.limbs);
        carry(r);
    }
}

/// Adds `b` to `a` limb by limb, without carrying.
fn add_limbs(a: &mut Signed62, b: &Signed62) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += *y;
    }
}

/// Carries between limbs so that limbs 0 to 3 are in `[0, 2^62)` again.
fn carry(r: &mut Signed62) {
    for k in 0..4 {
        r[k + 1] += r[k] >> 62;
        r[k] &= M62 as i64;
    }
}

/// `a` in signed 62-bit limbs (all non-negative, the top one below `2^8`).
const fn to_signed62(a: &[u64; 4]) -> Signed62 {
    [
        (a[0] & M62) as i64,
        ((a[0] >> 62 | a[1] << 2) & M62) as i64,
        ((a[1] >> 60 | a[2] << 4) & M62) as i64,
        ((a[2] >> 58 | a[3] << 6) & M62) as i64,
        (a[3] >> 56) as i64,
    ]
}

/// `a` (limbs 0 to 3 in `[0, 2^62)`, value in `[0, 2^256)`) in 64-bit limbs.
fn from_signed62(a: &Signed62) -> [u64; 4] {
    let l = a.map(|x| x as u64);
    [
        l[0] | l[1] << 62,
        l[1] >> 2 | l[2] << 60,
        l[2] >> 4 | l[3] << 58,
        l[3] >> 6 | l[4] << 56,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::{Odd, U256};

    /// n, the order of the P-256 group.
    const N: [u64; 4] = [
        0xf3b9_cac2_fc63_2551,
        0xbce6_faad_a717_9e84,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_0000_0000,
    ];
    /// p, the P-256 field prime.
    const P: [u64; 4] = [
        0xffff_ffff_ffff_ffff,
        0x0000_0000_ffff_ffff,
        0x0000_0000_0000_0000,
        0xffff_ffff_0000_0001,
    ];

    /// A deterministic xorshift64* generator (no dependency, same values on
    /// every run).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn next256(&mut self) -> [u64; 4] {
            [self.next(), self.next(), self.next(), self.next()]
        }
    }

    /// `a >= b`, as 256-bit numbers.
    fn ge(a: &[u64; 4], b: &[u64; 4]) -> bool {
        for k in (0..4).rev() {
            if a[k] != b[k] {
                return a[k] > b[k];
            }
        }
        true
    }

    /// `a - b` modulo 2^256, and the borrow out.
    fn sub(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
        let mut out = [0; 4];
        let mut borrow = false;
        for k in 0..4 {
            let (d, b1) = a[k].overflowing_sub(b[k]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            out[k] = d;
            borrow = b1 || b2;
        }
        (out, borrow)
    }

    /// `a·b mod m` by schoolbook: the 512-bit product, then reduced one bit
    /// at a time from the top (independent of the code under test and of
    /// crypto-bigint).
    fn mul_mod(a: &[u64; 4], b: &[u64; 4], m: &[u64; 4]) -> [u64; 4] {
        let mut prod = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let t = u128::from(a[i]) * u128::from(b[j]) + u128::from(prod[i + j]) + carry;
                prod[i + j] = t as u64;
                carry = t >> 64;
            }
            prod[i + 4] = carry as u64;
        }
        let mut r = [0u64; 4];
        for bit in (0..512).rev() {
            // r = 2r + bit, with the bit shifted out of r kept apart.
            let top = r[3] >> 63;
            r = [
                r[0] << 1 | (prod[bit / 64] >> (bit % 64)) & 1,
                r[1] << 1 | r[0] >> 63,
                r[2] << 1 | r[1] >> 63,
                r[3] << 1 | r[2] >> 63,
            ];
            if top == 1 || ge(&r, m) {
                r = sub(&r, m).0;
            }
        }
        r
    }

    /// crypto-bigint's inverse, the reference.
    fn reference(x: &[u64; 4], m: &[u64; 4]) -> Option<[u64; 4]> {
        let modulus = Odd::new(U256::from_words(*m)).expect("odd modulus");
        Option::<U256>::from(U256::from_words(*x).invert_odd_mod_vartime(&modulus))
            .map(|w| w.to_words())
    }

    /// Inverts `x` modulo `m`, asserts the result agrees with crypto-bigint
    /// and, when there is one, that it is below `m` and `x·inv ≡ 1`.
    fn check(x: &[u64; 4], m: &[u64; 4], modulus: &Modulus) -> Option<[u64; 4]> {
        let got = invert_vartime(x, modulus);
        assert_eq!(got, reference(x, m), "x = {x:x?}, m = {m:x?}");
        if let Some(inv) = got {
            assert!(!ge(&inv, m), "inverse not reduced: x = {x:x?}, m = {m:x?}");
            let one = if *m == [1, 0, 0, 0] {
                [0; 4]
            } else {
                [1, 0, 0, 0]
            };
            assert_eq!(
                mul_mod(x, &inv, m),
                one,
                "x·inv != 1: x = {x:x?}, m = {m:x?}"
            );
        }
        got
    }

    /// `m - k` for a small k.
    fn minus(m: &[u64; 4], k: u64) -> [u64; 4] {
        sub(m, &[k, 0, 0, 0]).0
    }

    /// Values that stress the edges: small ones, ones just below the
    /// modulus, every power of two and every 2^k - 1, and long runs of zero
    /// or one bits.
    fn edge_values(m: &[u64; 4]) -> Vec<[u64; 4]> {
        let mut out = vec![
            [1, 0, 0, 0],
            [2, 0, 0, 0],
            [3, 0, 0, 0],
            minus(m, 1),
            minus(m, 2),
            minus(m, 3),
            // (m + 1) / 2, the inverse of 2.
            [
                m[0] >> 1 | m[1] << 63,
                m[1] >> 1 | m[2] << 63,
                m[2] >> 1 | m[3] << 63,
                m[3] >> 1,
            ],
            [0, 0, 0, 1],
            [u64::MAX, 0, 0, 0],
            [0, u64::MAX, 0, 0],
            [1, 0, 0, 1 << 63],
            [u64::MAX, u64::MAX, u64::MAX, 0x7fff_ffff_ffff_ffff],
            [0x0000_0000_ffff_ffff, 0, 0, 0xffff_0000_0000_0000],
            [0xaaaa_aaaa_aaaa_aaaa; 4],
            [0x5555_5555_5555_5555; 4],
            [0xffff_0000_ffff_0000; 4],
            [0x8000_0000_0000_0001; 4],
        ];
        // (m + 1)/2 needs the bit lost from m + 1; m is odd, so it is
        // m >> 1 plus 1 (subtracting 2^256 - 1 adds 1 modulo 2^256).
        out[6] = sub(&out[6], &[u64::MAX; 4]).0;
        for k in 0..256 {
            let mut pow = [0u64; 4];
            pow[k / 64] = 1 << (k % 64);
            out.push(pow);
            // 2^(k+1) - 1: a run of k + 1 one bits.
            let mut ones = [0u64; 4];
            for (j, limb) in ones.iter_mut().enumerate() {
                let bits = (k + 1).saturating_sub(64 * j).min(64);
                *limb = if bits == 64 {
                    u64::MAX
                } else {
                    (1 << bits) - 1
                };
            }
            out.push(ones);
            // A single zero bit in a field of ones.
            out.push(sub(&[u64::MAX; 4], &pow).0);
        }
        out.into_iter()
            .map(|x| if ge(&x, m) { sub(&x, m).0 } else { x })
            .filter(|x| *x != [0; 4])
            .collect()
    }

    /// `count` pseudo-random values below `m`.
    fn random_values(m: &[u64; 4], seed: u64, count: usize) -> Vec<[u64; 4]> {
        let mut rng = XorShift(seed);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let mut x = rng.next256();
            // Every other one gets a long run of zero or one bits.
            match rng.next() % 4 {
                0 => x[1] = 0,
                1 => x[2] = u64::MAX,
                _ => {}
            }
            while ge(&x, m) {
                x = sub(&x, m).0;
            }
            if x != [0; 4] {
                out.push(x);
            }
        }
        out
    }

    #[test]
    fn order_constant_is_prepared() {
        let n = Modulus::P256_ORDER;
        assert_eq!(n.limbs, Modulus::new(&N).limbs);
        assert_eq!(from_signed62(&n.limbs), N);
        assert_eq!(n.inv62.wrapping_mul(N[0]) & M62, 1);
        let p = Modulus::new(&P);
        assert_eq!(p.inv62.wrapping_mul(P[0]) & M62, 1);
    }

    #[test]
    fn inverts_edge_values_mod_order() {
        let m = Modulus::P256_ORDER;
        let values = edge_values(&N);
        assert!(values.len() > 700);
        for x in &values {
            assert!(check(x, &N, &m).is_some());
        }
        assert_eq!(invert_vartime(&[1, 0, 0, 0], &m), Some([1, 0, 0, 0]));
        assert_eq!(invert_vartime(&minus(&N, 1), &m), Some(minus(&N, 1)));
    }

    #[test]
    fn inverts_random_values_mod_order() {
        let m = Modulus::P256_ORDER;
        for x in random_values(&N, 0x9e37_79b9_7f4a_7c15, 4000) {
            assert!(check(&x, &N, &m).is_some());
        }
    }

    #[test]
    fn inverts_mod_field_prime() {
        let m = Modulus::new(&P);
        for x in edge_values(&P) {
            assert!(check(&x, &P, &m).is_some());
        }
        for x in random_values(&P, 0x0123_4567_89ab_cdef, 3000) {
            assert!(check(&x, &P, &m).is_some());
        }
    }

    #[test]
    fn accepts_unreduced_input() {
        let m = Modulus::P256_ORDER;
        // x ≥ n: the inverse is that of x mod n.
        for x in [[u64::MAX; 4], N.map(|l| l | 1 << 40), {
            let mut n1 = N;
            n1[0] += 1;
            n1
        }] {
            let reduced = sub(&x, &N).0;
            let inv = invert_vartime(&x, &m);
            assert_eq!(inv, invert_vartime(&reduced, &m));
            let inv = inv.expect("coprime");
            assert_eq!(mul_mod(&x, &inv, &N), [1, 0, 0, 0]);
        }
        // x = n itself is 0 modulo n.
        assert_eq!(invert_vartime(&N, &m), None);
    }

    #[test]
    fn zero_and_non_coprime_have_no_inverse() {
        assert_eq!(invert_vartime(&[0; 4], &Modulus::P256_ORDER), None);
        assert_eq!(invert_vartime(&[0; 4], &Modulus::new(&P)), None);

        // 2^256 - 1 = 3·5·17·257·641·65537·274177·6700417·…
        let all_ones = [u64::MAX; 4];
        let m = Modulus::new(&all_ones);
        for x in [
            [3, 0, 0, 0],
            [5, 0, 0, 0],
            [15, 0, 0, 0],
            [17 * 257, 0, 0, 0],
            [65537 * 641, 0, 0, 0],
            // 2^128 + 1 divides 2^256 - 1.
            [1, 1, 0, 0],
            // (2^256 - 1)/3, which shares all the other factors.
            [0x5555_5555_5555_5555; 4],
            minus(&all_ones, 3),
        ] {
            assert_eq!(check(&x, &all_ones, &m), None, "x = {x:x?}");
        }
        for x in [
            [2, 0, 0, 0],
            [7, 0, 0, 0],
            [1 << 63, 0, 0, 0],
            [0x1234_5678_9abc_def1, 0, 0, 0],
        ] {
            assert!(check(&x, &all_ones, &m).is_some(), "x = {x:x?}");
        }

        // 3^161, just below 2^256: only multiples of 3 lack an inverse.
        let mut pow3 = [1u64, 0, 0, 0];
        for _ in 0..161 {
            let mut carry = 0u128;
            for limb in &mut pow3 {
                let t = u128::from(*limb) * 3 + carry;
                *limb = t as u64;
                carry = t >> 64;
            }
            assert_eq!(carry, 0);
        }
        let m = Modulus::new(&pow3);
        let mut rng = XorShift(42);
        let mut none = 0;
        for x in random_values(&pow3, 7, 500) {
            let expect_none = mul_mod(&x, &[1, 0, 0, 0], &[3, 0, 0, 0]) == [0; 4];
            let got = check(&x, &pow3, &m);
            assert_eq!(got.is_none(), expect_none, "x = {x:x?}");
            none += usize::from(expect_none);
        }
        assert!(none > 100);
        for k in [1u32, 5, 40, 100, 160] {
            // 3^k · (a number coprime to 3).
            let mut x = [rng.next() | 1, 0, 0, 0];
            x[0] -= x[0] % 3;
            x[0] += 1;
            let mut pk = [1u64, 0, 0, 0];
            for _ in 0..k {
                pk = mul_mod(&pk, &[3, 0, 0, 0], &pow3);
            }
            let x = mul_mod(&x, &pk, &pow3);
            assert_eq!(check(&x, &pow3, &m), None, "3^{k}");
        }
    }

    #[test]
    fn small_moduli_exhaustive() {
        for m0 in [1u64, 3, 5, 7, 9, 15, 101, 255, 65537, (1 << 61) - 1] {
            let mw = [m0, 0, 0, 0];
            let m = Modulus::new(&mw);
            for x in 0..m0.min(300) {
                check(&[x, 0, 0, 0], &mw, &m);
            }
        }
        // Moduli that fill exactly 1 to 4 limbs, or just cross a 62-bit
        // limb boundary.
        let mut rng = XorShift(3);
        for mw in [
            [u64::MAX, 0, 0, 0],
            [u64::MAX, u64::MAX, 0, 0],
            [u64::MAX, u64::MAX, u64::MAX, 0],
            [(1 << 62) + 1, 0, 0, 0],
            [1, 1 << 60, 0, 0],
            [1, 0, 1 << 58, 0],
            [1, 0, 0, 1 << 56],
            [0xffff_ffff_ffff_ffc5, 0, 0, 0],
        ] {
            let m = Modulus::new(&mw);
            for _ in 0..200 {
                let mut x = rng.next256();
                for (xl, ml) in x.iter_mut().zip(&mw) {
                    if *ml == 0 {
                        *xl = 0;
                    }
                }
                while ge(&x, &mw) {
                    x = sub(&x, &mw).0;
                }
                check(&x, &mw, &m);
            }
        }
    }
}
