//! Double-double arithmetic: an unevaluated sum `hi + lo` with `|lo| ≤ ulp(hi)/2`,
//! carrying about 106 bits (relative error ~1e-32).
//!
//! Used only inside the formulas that cancel far from the origin of the
//! hyperbolic models (see `docs/GEOMETRY.md`, "Far from the origin"); the
//! fast paths near the origin stay in plain `f64`. The error-free
//! transformations are Knuth's TwoSum and Dekker's TwoProduct, written
//! without `fma` (a libm call unless the build targets FMA hardware).

use std::ops::{Add, Div, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Dd {
    pub(crate) hi: f64,
    pub(crate) lo: f64,
}

/// `a + b = s + e` exactly.
pub(crate) fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// `a + b = s + e` exactly, given `|a| ≥ |b|` (or `a = 0`).
fn fast_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

/// Dekker's split of `a` into two halves whose products are exact.
fn split(a: f64) -> (f64, f64) {
    let t = 134_217_729.0 * a; // 2^27 + 1
    let hi = t - (t - a);
    (hi, a - hi)
}

/// `a * b = p + e` exactly (Dekker's TwoProduct), while `|a|, |b| < 2^996`.
pub(crate) fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

impl Dd {
    pub(crate) const ZERO: Dd = Dd { hi: 0.0, lo: 0.0 };
    pub(crate) const ONE: Dd = Dd { hi: 1.0, lo: 0.0 };

    pub(crate) fn new(hi: f64, lo: f64) -> Dd {
        let (h, l) = fast_two_sum(hi, lo);
        Dd { hi: h, lo: l }
    }

    pub(crate) fn from_f64(x: f64) -> Dd {
        Dd { hi: x, lo: 0.0 }
    }

    /// `a + b`, exactly.
    pub(crate) fn sum(a: f64, b: f64) -> Dd {
        let (hi, lo) = two_sum(a, b);
        Dd { hi, lo }
    }

    /// `a * b`, exactly.
    pub(crate) fn prod(a: f64, b: f64) -> Dd {
        let (hi, lo) = two_prod(a, b);
        Dd { hi, lo }
    }

    pub(crate) fn to_f64(self) -> f64 {
        self.hi + self.lo
    }

    pub(crate) fn mul_f64(self, b: f64) -> Dd {
        let (p, e) = two_prod(self.hi, b);
        Dd::new(p, e + self.lo * b)
    }

    /// `self / b` for an `f64` `b`: one quotient, its remainder formed
    /// exactly (TwoProduct), and a correction; cheaper than [`Div`].
    pub(crate) fn div_f64(self, b: f64) -> Dd {
        let q = self.hi / b;
        let (p, e) = two_prod(q, b);
        Dd::new(q, (((self.hi - p) - e) + self.lo) / b)
    }

    pub(crate) fn sqr(self) -> Dd {
        self * self
    }

    /// Square root; 0 for non-positive input.
    pub(crate) fn sqrt(self) -> Dd {
        if self.hi <= 0.0 {
            return Dd::ZERO;
        }
        let s = self.hi.sqrt();
        let r = self - Dd::prod(s, s);
        Dd::new(s, r.hi / (2.0 * s))
    }
}

impl Add for Dd {
    type Output = Dd;
    fn add(self, o: Dd) -> Dd {
        let (s, e) = two_sum(self.hi, o.hi);
        let (t, f) = two_sum(self.lo, o.lo);
        let (s, e) = fast_two_sum(s, e + t);
        Dd::new(s, e + f)
    }
}

impl Sub for Dd {
    type Output = Dd;
    fn sub(self, o: Dd) -> Dd {
        self + (-o)
    }
}

impl Neg for Dd {
    type Output = Dd;
    fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Mul for Dd {
    type Output = Dd;
    fn mul(self, o: Dd) -> Dd {
        let (p, e) = two_prod(self.hi, o.hi);
        Dd::new(p, e + (self.hi * o.lo + self.lo * o.hi))
    }
}

impl Div for Dd {
    type Output = Dd;
    fn div(self, o: Dd) -> Dd {
        let q1 = self.hi / o.hi;
        let r = self - o.mul_f64(q1);
        let q2 = r.hi / o.hi;
        let r = r - o.mul_f64(q2);
        let q3 = r.hi / o.hi;
        Dd::new(q1, q2) + Dd::from_f64(q3)
    }
}

/// `Σ x_i y_i` in double-double (Ogita, Rump and Oishi's Dot2, kept as `hi + lo`).
pub(crate) fn dot_dd(x: &[f64], y: &[f64]) -> Dd {
    let (mut hi, mut lo) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (p, ep) = two_prod(*a, *b);
        let (s, es) = two_sum(hi, p);
        hi = s;
        lo += es + ep;
    }
    Dd::new(hi, lo)
}

/// `Σ x_i^2` in double-double, faster than [`dot_dd`]: every square is cut at
/// a fixed binary point (Rump, Ogita and Oishi's ExtractScalar with
/// `σ = 2^⌈log2 Σ⌉`), so the high parts add up exactly in any order and
/// four independent accumulators keep the pipeline full; the low parts and
/// the squares' rounding errors (Dekker) are summed plainly, where their
/// error is below `n^2 2^-106` of the total.
pub(crate) fn sum_sq_dd(x: &[f64]) -> Dd {
    sum_sq_dd_near(x, x.iter().map(|a| a * a).sum())
}

/// [`sum_sq_dd`] given the plain sum (which only sets the binary point).
pub(crate) fn sum_sq_dd_near(x: &[f64], plain: f64) -> Dd {
    if !(plain.is_normal() && plain < 1e300) {
        return dot_dd(x, x);
    }
    // The power of two just above the plain sum: σ ≥ every square, and the
    // exact total stays below 2σ.
    let sigma = f64::from_bits(((plain.to_bits() >> 52) + 1) << 52);
    let (mut hi, mut lo) = ([0.0f64; 4], [0.0f64; 4]);
    for chunk in x.chunks(4) {
        for (k, a) in chunk.iter().enumerate() {
            let p = a * a;
            let (ah, al) = split(*a);
            let e = ((ah * ah - p) + 2.0 * ah * al) + al * al;
            let q = (sigma + p) - sigma;
            hi[k] += q;
            lo[k] += (p - q) + e;
        }
    }
    let h = (hi[0] + hi[1]) + (hi[2] + hi[3]);
    let l = (lo[0] + lo[1]) + (lo[2] + lo[3]);
    Dd::new(h, l)
}

/// `Σ x_i y_i` of double-double vectors.
pub(crate) fn dot_dd_vec(x: &[Dd], y: &[Dd]) -> Dd {
    x.iter().zip(y).fold(Dd::ZERO, |acc, (a, b)| acc + *a * *b)
}

const LN2: Dd = Dd {
    hi: std::f64::consts::LN_2,
    lo: 2.319_046_813_846_299_6e-17,
};

/// `e^x - 1` for `|x| ≤ ln 2 / 2`, to about 1e-32 relative: the argument is
/// halved ten times, the Taylor series summed, and the halvings undone with
/// `(e^{2s} - 1) = m (m + 2)`, `m = e^s - 1`.
fn expm1_small(x: Dd) -> Dd {
    let s = Dd {
        hi: x.hi / 1024.0,
        lo: x.lo / 1024.0,
    };
    let mut term = s;
    let mut m = s;
    for k in 2..=12 {
        term = (term * s).div_f64(k as f64);
        m = m + term;
        if term.hi.abs() < 1e-36 * m.hi.abs() {
            break;
        }
    }
    for _ in 0..10 {
        m = m * (m + Dd::from_f64(2.0));
    }
    m
}

/// `e^x` in double-double for `|x| ≤ 709`; infinite beyond.
pub(crate) fn exp_dd(x: Dd) -> Dd {
    if x.hi > 709.0 {
        return Dd::from_f64(f64::INFINITY);
    }
    if x.hi < -745.0 {
        return Dd::ZERO;
    }
    let k = (x.hi / std::f64::consts::LN_2).round();
    let r = x - LN2.mul_f64(k);
    let e = expm1_small(r) + Dd::ONE;
    let scale = 2f64.powi(k as i32);
    Dd {
        hi: e.hi * scale,
        lo: e.lo * scale,
    }
}

/// `e^x - 1` in double-double, accurate relative to the result also for
/// tiny `x` (`|x| ≤ 709`).
pub(crate) fn expm1_dd(x: Dd) -> Dd {
    if x.hi.abs() <= 0.34 {
        expm1_small(x)
    } else {
        exp_dd(x) - Dd::ONE
    }
}

/// `ln a` in double-double for finite `a > 0` (`-∞` for `a ≤ 0`, `+∞` for
/// `a = +∞`): the binary exponent is taken out exactly, leaving
/// `m ∈ [1/√2, √2]`, and one Newton step on `e^t = m` from the `f64`
/// logarithm doubles its 53 bits (the error of a Newton step is the square
/// of the previous one, and `|ln m| ≤ 0.35` keeps the start's absolute error
/// below 2^-54).
pub(crate) fn ln_dd(a: Dd) -> Dd {
    if a.hi.is_nan() || a.hi <= 0.0 {
        return Dd::from_f64(f64::NEG_INFINITY);
    }
    if a.hi.is_infinite() {
        return Dd::from_f64(f64::INFINITY);
    }
    let k = (a.hi.ln() / std::f64::consts::LN_2).round();
    let scale = 2f64.powi(-(k as i32));
    let m = Dd {
        hi: a.hi * scale,
        lo: a.lo * scale,
    };
    let t0 = m.hi.ln();
    let e0 = expm1_small(Dd::from_f64(t0));
    // Newton on f(t) = e^t - m: t1 = t0 - (e^t0 - m) / e^t0.
    let t1 = Dd::from_f64(t0) + ((m - Dd::ONE) - e0) / (Dd::ONE + e0);
    LN2.mul_f64(k) + t1
}

/// `ln(1 + z)` in double-double for `z > -1`, accurate relative to the
/// result also for tiny `z`.
pub(crate) fn ln1p_dd(z: Dd) -> Dd {
    if z.hi.abs() >= 0.25 {
        return ln_dd(Dd::ONE + z);
    }
    // Newton on f(t) = e^t - 1 - z from the f64 `ln_1p` (|t0| < 0.29).
    let t0 = z.hi.ln_1p();
    let e0 = expm1_small(Dd::from_f64(t0));
    Dd::from_f64(t0) + (z - e0) / (Dd::ONE + e0)
}

/// `acosh(1 + d)` in double-double for `d ≥ 0` (negative `d`, rounding
/// noise below 1, gives 0): `ln(1 + d + √(d(d + 2)))`, with no
/// cancellation for tiny `d`.
pub(crate) fn acosh1p_dd(d: Dd) -> Dd {
    if d.hi <= 0.0 {
        return Dd::ZERO;
    }
    ln1p_dd(d + (d * (d + Dd::from_f64(2.0))).sqrt())
}

/// `asinh s` in double-double for `s ≥ 0`: `ln(1 + s + s^2 / (1 + √(1 + s^2)))`.
pub(crate) fn asinh_dd(s: Dd) -> Dd {
    if s.hi <= 0.0 {
        return Dd::ZERO;
    }
    let s2 = s.sqr();
    ln1p_dd(s + s2 / (Dd::ONE + (Dd::ONE + s2).sqrt()))
}

/// `(cosh t, sinh t / t)` in double-double, for `0 ≤ t ≤ 709`.
pub(crate) fn cosh_sinhc_dd(t: Dd) -> (Dd, Dd) {
    if t.hi < 0.3 {
        // Taylor series of both: no cancellation in sinh t / t near 0.
        let t2 = t.sqr();
        let (mut c, mut s) = (Dd::ONE, Dd::ONE);
        let (mut tc, mut ts) = (Dd::ONE, Dd::ONE);
        for k in 1..=20 {
            let k = k as f64;
            tc = (tc * t2).div_f64((2.0 * k - 1.0) * (2.0 * k));
            ts = (ts * t2).div_f64((2.0 * k) * (2.0 * k + 1.0));
            c = c + tc;
            s = s + ts;
            if tc.hi < 1e-36 {
                break;
            }
        }
        return (c, s);
    }
    let e = exp_dd(t);
    let inv = Dd::ONE / e;
    let half = |d: Dd| Dd {
        hi: d.hi * 0.5,
        lo: d.lo * 0.5,
    };
    (half(e + inv), half(e - inv) / t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(hi, lo)` of each value, from 50-digit mpmath results for the same
    /// f64 arguments.
    fn assert_dd(got: Dd, hi: f64, lo: f64) {
        let err = (got - Dd::new(hi, lo)).to_f64().abs();
        assert!(err <= 1e-30 * hi.abs(), "{got:?} vs ({hi}, {lo}): {err:e}");
    }

    #[test]
    fn double_double_exp_matches_known_digits() {
        assert_dd(exp_dd(Dd::ONE), std::f64::consts::E, 1.4456468917292502e-16);
        assert_dd(
            exp_dd(Dd::from_f64(30.0)),
            10686474581524.463,
            -0.0007436345313492586,
        );
        let (c, s) = cosh_sinhc_dd(Dd::from_f64(0.1));
        assert_dd(c, 1.0050041680558035, 9.55546062395436e-17);
        assert_dd(s, 1.0016675001984403, -4.9745330414899006e-17);
        let (c, s) = cosh_sinhc_dd(Dd::from_f64(12.5));
        assert_dd(c, 134168.64326230055, 2.031150791614586e-12);
        assert_dd(s, 10733.491460685913, -7.466671304595582e-13);
    }

    #[test]
    fn double_double_logarithms_match_known_digits() {
        assert_dd(
            ln_dd(Dd::from_f64(7.5)),
            2.0149030205422647,
            8.991967888489638e-17,
        );
        assert_dd(
            ln_dd(Dd::from_f64(1e43)),
            99.01115899874397,
            -1.326708771546604e-15,
        );
        assert_dd(
            ln_dd(Dd::from_f64(3e-300)),
            -689.6769156095456,
            3.55803606729799e-14,
        );
        assert_dd(ln1p_dd(Dd::from_f64(1e-20)), 1e-20, -5e-41);
        assert_dd(
            ln1p_dd(Dd::from_f64(0.3)),
            0.26236426446749106,
            -1.6067257209028454e-17,
        );
        assert_dd(
            ln1p_dd(Dd::from_f64(0.2)),
            0.18232155679395465,
            -1.2293584505723786e-17,
        );
        assert_dd(
            acosh1p_dd(Dd::from_f64(1e-40)),
            1.414213562373095e-20,
            -1.5055716379543975e-37,
        );
        assert_dd(
            acosh1p_dd(Dd::from_f64(0.5)),
            0.9624236501192069,
            -4.651563402692547e-17,
        );
        assert_dd(
            acosh1p_dd(Dd::from_f64(1e30)),
            69.77069997038132,
            5.252114779688578e-16,
        );
        assert_dd(
            expm1_dd(Dd::from_f64(-0.3)),
            -0.2591817793182821,
            -1.805530505953e-18,
        );
        assert_dd(
            expm1_dd(Dd::from_f64(-2.0)),
            -0.8646647167633873,
            -1.042381423288669e-17,
        );
        assert_dd(expm1_dd(Dd::from_f64(1e-25)), 1e-25, 5.0000000000000006e-51);
        assert_eq!(acosh1p_dd(Dd::from_f64(-1e-30)), Dd::ZERO);
        assert_eq!(ln_dd(Dd::ZERO).hi, f64::NEG_INFINITY);
    }

    #[test]
    fn sum_of_squares_agrees_with_dot2() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        for n in [1, 3, 12, 128, 1000] {
            for scale in [1e-200, 1e-3, 1.0, 7.0, 1e150] {
                let x: Vec<f64> = (0..n)
                    .map(|_| scale * rand::Rng::random_range(&mut rng, -1.0..1.0))
                    .collect();
                let (a, b) = (sum_sq_dd(&x), dot_dd(&x, &x));
                let rel = (a - b).to_f64().abs() / b.hi.max(f64::MIN_POSITIVE);
                assert!(rel < 1e-29, "n {n} scale {scale}: {rel:e}");
            }
        }
    }

    #[test]
    fn double_double_division_and_sqrt_are_accurate() {
        let third = Dd::ONE / Dd::from_f64(3.0);
        let back = third * Dd::from_f64(3.0) - Dd::ONE;
        assert!(back.to_f64().abs() < 1e-31);
        let r2 = Dd::from_f64(2.0).sqrt();
        assert!((r2.sqr() - Dd::from_f64(2.0)).to_f64().abs() < 1e-31);
    }
}
