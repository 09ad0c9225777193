//! The hyperboloid (Lorentz) model `H^n_c`.

use rand::RngCore;

use crate::dd::{Dd, cosh_sinhc_dd, dot_dd, dot_dd_vec, sum_sq_dd};
use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    CHECK_TOLERANCE, FAST_PATH_TOLERANCE, MAX_EXP_ARG, UNIT_ROUNDOFF, acosh1p, check_coords,
    check_curvature, check_dim, dot, finite_result, inv_sinhc, lin2, max_abs, minkowski, norm,
    norm_sq, scaled, sinhc, standard_normal, tangent_residual,
};

/// The hyperboloid of curvature `-c`:
/// `{x ∈ R^{n+1} : <x,x>_L = -1/c, x_0 > 0}` with the Lorentz inner product
/// `<x,y>_L = -x_0 y_0 + Σ_{i≥1} x_i y_i` restricted to its tangent spaces.
///
/// # Numerics
/// Coordinates grow like `e^r` with the hyperbolic radius `r`, so the naive
/// `acosh(-c<x,y>_L)` loses everything to cancellation for nearby points far
/// from the origin (at `r = 15`, `x_0 y_0 ≈ 1e13`). Here the time
/// coordinate is treated as derived from the spatial ones
/// (`x_0 = sqrt(1/c + |x_s|^2)`), and
/// `-c<x,y>_L - 1 = 2 sinh^2(√c Δr / 2) + (c/2) |x_s| |y_s| |x̂_s - ŷ_s|^2`
/// is a sum of non-negative terms (`Δr` is the difference of the points'
/// radii, `x̂_s` the direction of the spatial part). Tangent vectors are
/// their spatial parts too (`v_0 = <x_s, v_s>/x_0`). Every operation runs in
/// `f64` with a bound on its rounding error and, where the bound is too
/// large (far out, or for very close points), again in double-double with
/// every difference formed exactly: distance, `log`, `exp`, `geodesic`,
/// parallel transport and `inner` agree to 1e-12 with the exact result for
/// the inputs' spatial parts at every radius up to 30 (docs/GEOMETRY.md,
/// "Far from the origin").
///
/// [`project`](Manifold::project), [`exp`](Manifold::exp) and the transforms
/// recompute `x_0` from the spatial part, so their results satisfy the
/// constraint to the last bit of `x_0`. In exact arithmetic on the stored
/// `f64` values, `<x,x>_L + 1/c` is then bounded by about `x_0^2 · 2^-52`:
/// below `1e-9 / c` up to radius 8, and ≈ 7/c at radius 20 — no `f64`
/// representation can do better, because one ulp of `x_0 ≈ 2.4e8` is `3e-8`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyperboloid {
    dim: usize,
    c: f64,
}

impl Hyperboloid {
    /// `H^n_c`: dimension `n >= 1` (points have `n + 1` coordinates),
    /// curvature `-c` with `c > 0`.
    pub fn new(dim: usize, c: f64) -> Result<Self> {
        Ok(Self {
            dim: check_dim(dim)?,
            c: check_curvature(c)?,
        })
    }

    /// The curvature parameter `c` (sectional curvature `-c`).
    pub fn c(&self) -> f64 {
        self.c
    }

    /// The Lorentz (Minkowski) inner product `-x_0 y_0 + Σ x_i y_i` of two
    /// ambient vectors.
    pub fn lorentz_inner(&self, x: &[f64], y: &[f64]) -> Result<f64> {
        check_coords(x, self.dim + 1)?;
        check_coords(y, self.dim + 1)?;
        Ok(minkowski(x, y))
    }

    /// `cosh(√c d(x, y)) - 1 = -c<x,y>_L - 1` without the `acosh` and `cosh`
    /// a round trip through [`distance_unchecked`](Manifold::distance_unchecked)
    /// would take: as accurate at every radius (it is the quantity that
    /// distance is computed from), for indexes that rank by any increasing
    /// function of the distance. Coordinates are not checked; a NaN time
    /// coordinate gives `+∞`, as the distance does.
    pub fn cosh_distance_minus_one(&self, x: &[f64], y: &[f64]) -> f64 {
        if x.first().is_some_and(|a| a.is_nan()) || y.first().is_some_and(|a| a.is_nan()) {
            return f64::INFINITY;
        }
        self.delta(x, y)
    }

    /// The point over the spatial coordinates `xs`: `(sqrt(1/c + |xs|^2), xs)`.
    pub(crate) fn lift(&self, xs: &[f64]) -> Vec<f64> {
        let mut x = Vec::with_capacity(xs.len() + 1);
        x.push((1.0 / self.c + norm_sq(xs)).sqrt());
        x.extend_from_slice(xs);
        x
    }

    /// `-c<x,y>_L - 1 ≥ 0` (see the type's docs): the plain-`f64` form when
    /// its error bound allows, the double-double form otherwise.
    fn delta(&self, x: &[f64], y: &[f64]) -> f64 {
        let (d, err) = self.delta_direct(x, y);
        if err <= FAST_PATH_TOLERANCE * d {
            return d;
        }
        let f = self.delta_fast(x, y);
        if f.err <= FAST_PATH_TOLERANCE * f.delta {
            f.delta
        } else {
            delta_dd(self.c, x, y).to_f64()
        }
    }

    /// The radial + angular form straight from the norms and the directions,
    /// and a bound on its absolute error: the cheapest form, good for points
    /// near the origin or far apart.
    pub(crate) fn delta_direct(&self, x: &[f64], y: &[f64]) -> (f64, f64) {
        let (xs, ys) = (x.get(1..).unwrap_or(&[]), y.get(1..).unwrap_or(&[]));
        let (nx, ny) = (norm(xs), norm(ys));
        let sc = self.c.sqrt();
        let (s1, s2) = (sc * nx, sc * ny);
        let (h1, h2) = ((1.0 + s1 * s1).sqrt(), (1.0 + s2 * s2).sqrt());
        let den = s1 * h2 + h1 * s2;
        let eps = UNIT_ROUNDOFF;
        let en = (xs.len() as f64 + 6.0) * eps;
        // sinh(√c (r1 - r2)) = (s1^2 - s2^2) / (s1 h2 + h1 s2).
        let (sinh_dr, err_sdr) = if den > 0.0 {
            let sdr = (s1 - s2) * (s1 + s2) / den;
            (
                sdr,
                en * (s1 + s2) * (s1 + s2) / den + 4.0 * eps * sdr.abs(),
            )
        } else {
            (0.0, 0.0)
        };
        let radial = sinh_dr * sinh_dr / (1.0 + (1.0 + sinh_dr * sinh_dr).sqrt());
        let err_radial = sinh_dr.abs().min(1.0) * err_sdr + err_sdr * err_sdr + 4.0 * eps * radial;
        if nx == 0.0 || ny == 0.0 {
            return (radial, err_radial);
        }
        let (ix, iy) = (1.0 / nx, 1.0 / ny);
        let chord2: f64 = xs
            .iter()
            .zip(ys)
            .map(|(a, b)| (a * ix - b * iy).powi(2))
            .sum();
        let e_ch = 2.0 * (en + 2.0 * eps);
        let k = 0.5 * s1 * s2;
        let err_angular = k * (2.0 * chord2.sqrt() * e_ch + e_ch * e_ch) + en * k * chord2;
        (radial + k * chord2, err_radial + err_angular)
    }

    /// The radial + angular form in `f64`, and a bound on its absolute error,
    /// with differences formed from `y - x` (exact for nearby points), so the
    /// bound for nearby points is about `ε cosh r` relative, not `ε sinh^2 r`.
    fn delta_fast(&self, x: &[f64], y: &[f64]) -> FastDelta {
        let (xs, ys) = (x.get(1..).unwrap_or(&[]), y.get(1..).unwrap_or(&[]));
        let c = self.c;
        let (mut nx2, mut ny2, mut sq_diff, mut sq_abs, mut d2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (a, b) in xs.iter().zip(ys) {
            let (d, t) = (b - a, (b - a) * (b + a));
            nx2 += a * a;
            ny2 += b * b;
            sq_diff += t;
            sq_abs += t.abs();
            d2 += d * d;
        }
        let (nx, ny) = (nx2.sqrt(), ny2.sqrt());
        let (h1, h2) = ((1.0 + c * nx2).sqrt(), (1.0 + c * ny2).sqrt());
        let eps = UNIT_ROUNDOFF;
        let en = (xs.len() as f64 + 6.0) * eps;
        let e_sq = en * sq_abs;
        // sinh(√c (r_y - r_x)) = c (|y|^2 - |x|^2) / (√c (|x| h_y + h_x |y|)).
        let den = c.sqrt() * (nx * h2 + h1 * ny);
        let (sinh_dr, err_sdr) = if den > 0.0 {
            let sdr = c * sq_diff / den;
            (sdr, c * e_sq / den + en * sdr.abs())
        } else {
            (0.0, 0.0)
        };
        let radial = sinh_dr * sinh_dr / (1.0 + (1.0 + sinh_dr * sinh_dr).sqrt());
        // radial = sqrt(1 + s^2) - 1, whose slope s / sqrt(1 + s^2) is at
        // most min(1, |s|).
        let slope = sinh_dr.abs().min(1.0);
        let err_radial = slope * err_sdr + err_sdr * err_sdr + 4.0 * eps * radial;
        let (angular, err_angular) = if nx > 0.0 && ny > 0.0 {
            // The chord x̂ - ŷ, either as it stands (error about 2 en per
            // coordinate) or as -(y - x)/|x| + y (|y| - |x|) / (|x||y|), exact
            // for nearby points: whichever bound is smaller.
            let k = sq_diff / (nx + ny) / (nx * ny);
            let (inv_nx, inv_ny) = (1.0 / nx, 1.0 / ny);
            let e_direct = 2.0 * (en + 2.0 * eps);
            let e_diff = e_sq / ((nx + ny) * nx) + en * (k.abs() * ny + d2.sqrt() * inv_nx);
            let chord2: f64 = if e_direct < e_diff {
                xs.iter()
                    .zip(ys)
                    .map(|(a, b)| (a * inv_nx - b * inv_ny).powi(2))
                    .sum()
            } else {
                xs.iter()
                    .zip(ys)
                    .map(|(a, b)| (k * b - (b - a) * inv_nx).powi(2))
                    .sum()
            };
            let e_ch = e_direct.min(e_diff);
            let kk = 0.5 * c * nx * ny;
            let err = kk * (2.0 * chord2.sqrt() * e_ch + e_ch * e_ch) + en * kk * chord2;
            (kk * chord2, err)
        } else {
            (0.0, 0.0)
        };
        FastDelta {
            delta: radial + angular,
            err: err_radial + err_angular,
            nx2,
            ny2,
            sq_diff,
        }
    }

    /// `<v,v>_L` of a tangent vector at `x`, from spatial parts only
    /// (`v_0 = <x_s, v_s> / x_0` is implied by tangency):
    /// `|v_⊥|^2 + |v_∥|^2 / (1 + c|x_s|^2)`, where `∥` is along `x_s`.
    fn tangent_norm_sq(&self, x: &[f64], v: &[f64]) -> f64 {
        let (xs, vs) = (&x[1..], &v[1..]);
        let nx2 = norm_sq(xs);
        if nx2 == 0.0 {
            return norm_sq(vs);
        }
        let a = dot(xs, vs) / nx2;
        let perp2: f64 = xs.iter().zip(vs).map(|(p, q)| (q - a * p).powi(2)).sum();
        let par2 = a * a * nx2 / (1.0 + self.c * nx2);
        // The perpendicular part is a difference: its error is about
        // 4ε|v_s| per coordinate, which far out (where |v_s| ≫ |v|_L) is
        // more than the answer can take.
        let eps = UNIT_ROUNDOFF;
        let e_perp = 4.0 * eps * norm(vs);
        let bound = 2.0 * perp2.sqrt() * e_perp
            + (xs.len() as f64) * e_perp * e_perp
            + (xs.len() as f64 + 8.0) * eps * (perp2 + par2);
        if bound <= FAST_PATH_TOLERANCE * (perp2 + par2) {
            return perp2 + par2;
        }
        let t = Tangent::new(self.c, xs, vs);
        t.norm_sq()
    }

    /// The metric at `x` on two tangent vectors, from spatial parts only.
    fn tangent_inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> f64 {
        let xs = &x[1..];
        let (tu, tv) = (
            Tangent::new(self.c, xs, &u[1..]),
            Tangent::new(self.c, xs, &v[1..]),
        );
        (dot_dd_vec(&tu.perp, &tv.perp) + (tu.par * tv.par).mul_f64(tu.scale)).to_f64()
    }
}

/// The plain-`f64` `-c<x,y>_L - 1`, its error bound, and the sums other
/// maps reuse.
struct FastDelta {
    delta: f64,
    err: f64,
    nx2: f64,
    ny2: f64,
    /// `Σ (y_i - x_i)(y_i + x_i) = |y_s|^2 - |x_s|^2`.
    sq_diff: f64,
}

/// A tangent vector at `x` split into its part along `x_s` and the rest, in
/// double-double: `v_s = a x_s + v_⊥`.
struct Tangent {
    /// `v_⊥`.
    perp: Vec<Dd>,
    /// `a |x_s|`, the coordinate of `v_s` along `x_s / |x_s|`.
    par: Dd,
    /// `1 / (1 + c|x_s|^2)`: the metric along `x_s` (a spatial step `t`
    /// along `x_s` has length `t / cosh r`).
    scale: f64,
    scale_dd: Dd,
}

impl Tangent {
    fn new(c: f64, xs: &[f64], vs: &[f64]) -> Tangent {
        let n2 = sum_sq_dd(xs);
        if n2.hi == 0.0 {
            return Tangent {
                perp: vs.iter().map(|b| Dd::from_f64(*b)).collect(),
                par: Dd::ZERO,
                scale: 1.0,
                scale_dd: Dd::ONE,
            };
        }
        let a = dot_dd(xs, vs) / n2;
        Tangent {
            perp: xs
                .iter()
                .zip(vs)
                .map(|(p, q)| Dd::from_f64(*q) - a.mul_f64(*p))
                .collect(),
            par: a * n2.sqrt(),
            scale: 1.0 / (1.0 + c * n2.to_f64()),
            scale_dd: Dd::ONE / (Dd::ONE + n2.mul_f64(c)),
        }
    }

    fn norm_sq(&self) -> f64 {
        let perp2: f64 = self.perp.iter().map(|p| p.hi * p.hi).sum();
        perp2 + self.par.hi * self.par.hi * self.scale
    }

    /// `|v|_L^2` in double-double (the metric along `x_s` recomputed so).
    fn norm_sq_dd(&self) -> Dd {
        let perp2 = self.perp.iter().fold(Dd::ZERO, |acc, p| acc + p.sqr());
        perp2 + self.par.sqr() * self.scale_dd
    }
}

/// Two points far out, compared in double-double: every difference is
/// formed exactly, so nothing cancels but what the inputs say.
struct FarPair {
    /// `y_s - x_s`, exactly.
    diff: Vec<Dd>,
    /// `x_0` and `y_0`, implied by the spatial parts.
    x0: Dd,
    y0: Dd,
    /// `y_0 - x_0 = (|y_s|^2 - |x_s|^2) / (x_0 + y_0)`.
    diff0: Dd,
    /// `-c<x,y>_L - 1`.
    delta: Dd,
}

impl FarPair {
    fn new(c: f64, x: &[f64], y: &[f64]) -> FarPair {
        let (xs, ys) = (&x[1..], &y[1..]);
        let (n2x, n2y) = (sum_sq_dd(xs), sum_sq_dd(ys));
        let mut diff = Vec::with_capacity(xs.len());
        // |y|^2 - |x|^2 = Σ (y_i - x_i)(y_i + x_i), both factors exact.
        let mut sq_diff = Dd::ZERO;
        for (a, b) in xs.iter().zip(ys) {
            let d = Dd::sum(*b, -*a);
            sq_diff = sq_diff + d * Dd::sum(*b, *a);
            diff.push(d);
        }
        let inv_c = Dd::ONE / Dd::from_f64(c);
        let (x0, y0) = ((inv_c + n2x).sqrt(), (inv_c + n2y).sqrt());
        let diff0 = sq_diff / (x0 + y0);
        let delta = delta_from_parts(c, xs, ys, n2x, n2y, sq_diff);
        FarPair {
            diff,
            x0,
            y0,
            diff0,
            delta,
        }
    }
}

/// `-c<x,y>_L - 1` in double-double, without allocating.
#[cold]
#[inline(never)]
fn delta_dd(c: f64, x: &[f64], y: &[f64]) -> Dd {
    let (xs, ys) = (&x[1..], &y[1..]);
    let (n2x, n2y) = (sum_sq_dd(xs), sum_sq_dd(ys));
    let sq_diff = xs.iter().zip(ys).fold(Dd::ZERO, |acc, (a, b)| {
        acc + Dd::sum(*b, -*a) * Dd::sum(*b, *a)
    });
    delta_from_parts(c, xs, ys, n2x, n2y, sq_diff)
}

/// The radial and angular parts of `-c<x,y>_L - 1`, given `|x_s|^2`,
/// `|y_s|^2` and their exact difference `Σ (y_i - x_i)(y_i + x_i)`.
fn delta_from_parts(c: f64, xs: &[f64], ys: &[f64], n2x: Dd, n2y: Dd, sq_diff: Dd) -> Dd {
    let (nx, ny) = (n2x.sqrt(), n2y.sqrt());
    let sc = Dd::from_f64(c).sqrt();
    let (h1, h2) = (
        (Dd::ONE + n2x.mul_f64(c)).sqrt(),
        (Dd::ONE + n2y.mul_f64(c)).sqrt(),
    );
    // sinh(√c (r_y - r_x)) = c (|y|^2 - |x|^2) / (√c (|x| h_y + h_x |y|)).
    let den = sc * (nx * h2 + h1 * ny);
    let sinh_dr = if den.hi > 0.0 {
        sq_diff.mul_f64(c) / den
    } else {
        Dd::ZERO
    };
    let s2 = sinh_dr.sqr();
    let radial = s2 / (Dd::ONE + (Dd::ONE + s2).sqrt());
    if nx.hi == 0.0 || ny.hi == 0.0 {
        return radial;
    }
    // x̂ - ŷ = -(y - x)/|x| + y (|y| - |x|) / (|x||y|).
    let k = (sq_diff / (nx + ny)) / (nx * ny);
    let inv_nx = Dd::ONE / nx;
    let chord2 = xs.iter().zip(ys).fold(Dd::ZERO, |acc, (a, b)| {
        let ch = k.mul_f64(*b) - Dd::sum(*b, -*a) * inv_nx;
        acc + ch.sqr()
    });
    radial + (nx * ny * chord2).mul_f64(0.5 * c)
}

impl Hyperboloid {
    /// `log_x(y)` in `f64` with a bound on its error, or `None` when the
    /// bound says the double-double path must take over.
    fn log_fast(&self, x: &[f64], y: &[f64]) -> Option<Vec<f64>> {
        let (xs, ys) = (&x[1..], &y[1..]);
        let f = self.delta_fast(x, y);
        let delta = f.delta;
        let x0 = (1.0 / self.c + f.nx2).sqrt();
        let y0 = (1.0 / self.c + f.ny2).sqrt();
        let mut w = Vec::with_capacity(x.len());
        w.push(f.sq_diff / (x0 + y0) - delta * x0);
        let mut max_d = 0.0f64;
        w.extend(xs.iter().zip(ys).map(|(a, b)| {
            let d = b - a;
            max_d = max_d.max(d.abs());
            d - delta * a
        }));
        let eps = UNIT_ROUNDOFF;
        let bound = (xs.len() as f64 + 6.0) * eps * (max_d + delta * x0) + f.err * x0;
        if bound > FAST_PATH_TOLERANCE * max_abs(&w) {
            return None;
        }
        let k = inv_sinhc(acosh1p(delta));
        Some(scaled(&w, k))
    }

    fn log_far(&self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let p = FarPair::new(self.c, x, y);
        let k = inv_sinhc(acosh1p(p.delta.to_f64()));
        let mut v = Vec::with_capacity(x.len());
        v.push(((p.diff0 - p.delta * p.x0).to_f64()) * k);
        v.extend(
            p.diff
                .iter()
                .zip(&x[1..])
                .map(|(d, a)| (*d - p.delta.mul_f64(*a)).to_f64() * k),
        );
        v
    }

    /// `cosh θ x_s + (sinh θ / θ) v_s`, the spatial part of `exp_x(v)`;
    /// `None` when cancellation leaves fewer digits than promised even in
    /// double-double (a long step back towards the origin from far out).
    fn exp_spatial(&self, x: &[f64], v: &[f64], theta: f64) -> Option<Vec<f64>> {
        let (xs, vs) = (&x[1..], &v[1..]);
        let (ch, sh) = (theta.cosh(), sinhc(theta));
        let y = lin2(ch, xs, sh, vs);
        let terms = ch * max_abs(xs) + sh * max_abs(vs);
        // cosh θ and sinh θ / θ must agree with |v|_L: an error in θ moves
        // the point off the geodesic by θ times it, amplified by cancellation.
        // A coordinate error `e` moves the point by at most `e`; accepted up
        // to the promise's share of the step plus a few ulps of the result.
        let eps = UNIT_ROUNDOFF;
        let allowed = |y: &[f64], theta: f64| FAST_PATH_TOLERANCE * theta + 8.0 * eps * max_abs(y);
        if (8.0 + 4.0 * theta) * eps * terms <= allowed(&y, theta) {
            return Some(y);
        }
        let theta = Tangent::new(self.c, xs, vs)
            .norm_sq_dd()
            .mul_f64(self.c)
            .sqrt();
        let (ch, sh) = cosh_sinhc_dd(theta);
        let y: Vec<f64> = xs
            .iter()
            .zip(vs)
            .map(|(a, b)| (ch.mul_f64(*a) + sh.mul_f64(*b)).to_f64())
            .collect();
        (1e-30 * (1.0 + theta.hi) * terms <= allowed(&y, theta.hi)).then_some(y)
    }

    /// Orthonormal coordinates of a tangent vector at `p`: the part of `u_s`
    /// across `p_s` as it is, the part along `p_s` divided by `cosh r`
    /// (`ũ = u_⊥ + (a / cosh r) p_s` for `u_s = a p_s + u_⊥`), split in
    /// double-double because far out `u_s` is mostly its radial part.
    fn frame_coords(&self, p: &[f64], u: &[f64]) -> Vec<f64> {
        let (ps, us) = (&p[1..], &u[1..]);
        let n2_plain = norm_sq(ps);
        if n2_plain == 0.0 {
            return us.to_vec();
        }
        // Up to cosh r = 1000 (r ≈ 7.6) the plain split loses at most
        // (n + 4) u cosh r ≈ 2e-12 of the vector's length: a fiftieth of the
        // mean's default tolerance, and about its resolution floor.
        if self.c * n2_plain <= 1e6 {
            let a = dot(ps, us) / n2_plain;
            let k = a / (1.0 + self.c * n2_plain).sqrt();
            return ps
                .iter()
                .zip(us)
                .map(|(s, q)| (q - a * s) + k * s)
                .collect();
        }
        let n2 = sum_sq_dd(ps);
        let a = dot_dd(ps, us) / n2;
        let k = (a / (Dd::ONE + n2.mul_f64(self.c)).sqrt()).to_f64();
        ps.iter()
            .zip(us)
            .map(|(s, q)| (Dd::from_f64(*q) - a.mul_f64(*s)).to_f64() + k * s)
            .collect()
    }

    /// The inverse of [`Self::frame_coords`]: `u_s = ũ + (<p_s,ũ>/|p_s|^2)(cosh r - 1) p_s`,
    /// with `u_0` implied by tangency.
    fn tangent_from_frame(&self, p: &[f64], v: &[f64]) -> Vec<f64> {
        let ps = &p[1..];
        let n2 = norm_sq(ps);
        let mut u = Vec::with_capacity(p.len());
        u.push(0.0);
        if n2 == 0.0 {
            u.extend_from_slice(v);
        } else {
            let cn2 = self.c * n2;
            let ch_m1 = cn2 / (1.0 + (1.0 + cn2).sqrt());
            let k = dot(ps, v) / n2 * ch_m1;
            u.extend(v.iter().zip(ps).map(|(a, s)| a + k * s));
        }
        let x0 = (1.0 / self.c + n2).sqrt();
        u[0] = dot(ps, &u[1..]) / x0;
        u
    }

    /// Parallel transport along the geodesic, in double-double:
    /// `v + k (x + y)`, `k = c<y,v>_L / (2 + δ)`, with
    /// `<y,v>_L = (a/c)((y_0 - x_0)/x_0 - δ) + <y_s - x_s, v_⊥>`
    /// (`v_s = a x_s + v_⊥`), a form without cancellation.
    fn transport_far(&self, x: &[f64], y: &[f64], v: &[f64]) -> Vec<f64> {
        let c = self.c;
        let p = FarPair::new(c, x, y);
        let (xs, ys, vs) = (&x[1..], &y[1..], &v[1..]);
        let n2 = sum_sq_dd(xs);
        let xv = dot_dd(xs, vs);
        let (a, v0) = if n2.hi > 0.0 {
            (xv / n2, xv / p.x0)
        } else {
            (Dd::ZERO, Dd::ZERO)
        };
        let perp: Vec<Dd> = xs
            .iter()
            .zip(vs)
            .map(|(s, q)| Dd::from_f64(*q) - a.mul_f64(*s))
            .collect();
        let yv = (a / Dd::from_f64(c)) * (p.diff0 / p.x0 - p.delta) + dot_dd_vec(&p.diff, &perp);
        let k = yv.mul_f64(c) / (Dd::from_f64(2.0) + p.delta);
        let mut out = Vec::with_capacity(x.len());
        out.push((v0 + k * (p.x0 + p.y0)).to_f64());
        out.extend(
            vs.iter()
                .zip(xs.iter().zip(ys))
                .map(|(q, (s, t))| (Dd::from_f64(*q) + k * Dd::sum(*s, *t)).to_f64()),
        );
        out
    }
}

impl Manifold for Hyperboloid {
    fn name(&self) -> &'static str {
        "hyperboloid"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ambient_dim(&self) -> usize {
        self.dim + 1
    }

    /// Accepts `x` when `x_0` is within [`CHECK_TOLERANCE`] (relative) of
    /// `sqrt(1/c + |x_s|^2)`.
    fn check(&self, x: &[f64]) -> Result<()> {
        check_coords(x, self.dim + 1)?;
        let expected = (1.0 / self.c + norm_sq(&x[1..])).sqrt();
        let residual = (x[0] - expected).abs() / expected;
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "<x,x>_L = -1/c with x_0 > 0",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        let residual = tangent_residual(minkowski(x, v), x, v);
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::NotTangent {
                manifold: self.name(),
                constraint: "<x,v>_L = 0",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    /// Keeps the spatial coordinates and sets `x_0 = sqrt(1/c + |x_s|^2)`
    /// (whatever `x_0` was), the standard retraction onto the upper sheet.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_coords(x, self.dim + 1)?;
        finite_result(self.lift(&x[1..]), "project")
    }

    /// `v + c<x,v>_L x`.
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        finite_result(lin2(1.0, v, self.c * minkowski(x, v), x), "project_tangent")
    }

    /// Reads spatial parts only, but a NaN time coordinate still gives `+∞`.
    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        if x.first().is_some_and(|a| a.is_nan()) || y.first().is_some_and(|a| a.is_nan()) {
            return f64::INFINITY;
        }
        acosh1p(self.delta(x, y)) / self.c.sqrt()
    }

    /// `cosh(√c|v|) x + sinh(√c|v|) v / (√c|v|)`, then the time coordinate
    /// is recomputed from the spatial ones (`v_0` is implied by tangency).
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let theta = self.c.sqrt() * self.tangent_norm_sq(x, v).sqrt();
        if theta == 0.0 {
            return Ok(x.to_vec());
        }
        if theta > MAX_EXP_ARG {
            return Err(GeometryError::NotRepresentable {
                operation: "exp",
                reason: "cosh of the tangent vector's length overflows f64",
                argument: theta,
            });
        }
        let y = self
            .exp_spatial(x, v, theta)
            .ok_or(GeometryError::NotRepresentable {
                operation: "exp",
                reason: "the step cancels the base point beyond double-double precision",
                argument: theta,
            })?;
        finite_result(self.lift(&y), "exp")
    }

    /// `d · (y + c<x,y>_L x) / |y + c<x,y>_L x|_L`, with
    /// `y + c<x,y>_L x = (y - x) - δ x` and `|·|_L = sinh(√c d)/√c`; far out
    /// every difference is formed exactly in double-double.
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        let v = match self.log_fast(x, y) {
            Some(v) => v,
            None => self.log_far(x, y),
        };
        finite_result(v, "log")
    }

    /// For `0 ≤ t ≤ 1`, `(sinh((1-t)θ) x + sinh(tθ) y) / sinh θ` with
    /// `θ = √c d(x, y)`: a combination with non-negative weights, so nothing
    /// cancels and no tangent vector is rounded on the way (far out, a
    /// tangent vector's coordinates are `cosh r` times its length, and
    /// rounding them would cost digits). Other `t` go through `log` and `exp`.
    fn geodesic(&self, x: &[f64], y: &[f64], t: f64) -> Result<Vec<f64>> {
        if !(0.0..=1.0).contains(&t) {
            let v = self.log(x, y)?;
            return self.exp(x, &scaled(&v, t));
        }
        self.check(x)?;
        self.check(y)?;
        let theta = acosh1p(self.delta(x, y));
        if theta == 0.0 {
            return Ok(x.to_vec());
        }
        // sinh(u) / sinh(θ) = e^(u-θ) (1 - e^(-2u)) / (1 - e^(-2θ)), finite for every θ.
        let ratio = |u: f64| (u - theta).exp() * (-2.0 * u).exp_m1() / (-2.0 * theta).exp_m1();
        let (a, b) = (ratio((1.0 - t) * theta), ratio(t * theta));
        finite_result(self.lift(&lin2(a, &x[1..], b, &y[1..])), "geodesic")
    }

    fn origin(&self) -> Vec<f64> {
        let mut o = vec![0.0; self.dim + 1];
        o[0] = 1.0 / self.c.sqrt();
        o
    }

    /// `exp0` of a standard normal vector: hyperbolic radius about `√n`.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        let v = standard_normal(rng, self.dim);
        let theta = self.c.sqrt() * norm(&v);
        self.lift(&scaled(&v, sinhc(theta)))
    }

    /// `<u,v>_L` with the time coordinates implied by tangency, computed as
    /// `<u_⊥,v_⊥> + u_∥ v_∥ / (1 + c|x_s|^2)` in double-double (the plain
    /// form cancels far out).
    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, u)?;
        self.check_tangent(x, v)?;
        Ok(self.tangent_inner(x, u, v))
    }

    fn norm(&self, x: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, v)?;
        Ok(self.tangent_norm_sq(x, v).sqrt())
    }

    /// `v + c<y,v>_L / (1 - c<x,y>_L) · (x + y)`: in `f64` near the origin,
    /// in a cancellation-free double-double form beyond `cosh r = 2`.
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        self.check(y)?;
        let near = |p: &[f64]| self.c * norm_sq(&p[1..]) <= 3.0;
        if !(near(x) && near(y)) {
            return finite_result(self.transport_far(x, y, v), "parallel_transport");
        }
        let k = self.c * minkowski(y, v) / (2.0 + self.delta(x, y));
        finite_result(
            v.iter()
                .zip(x.iter().zip(y))
                .map(|(vi, (xi, yi))| vi + k * (xi + yi))
                .collect(),
            "parallel_transport",
        )
    }

    /// The tangent space at the origin is `{(0, v)}`:
    /// `exp0(v) = (cosh(√c|v|)/√c, sinh(√c|v|) v / (√c|v|))`.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim)?;
        let theta = self.c.sqrt() * norm(v);
        if theta > MAX_EXP_ARG {
            return Err(GeometryError::NotRepresentable {
                operation: "exp0",
                reason: "cosh of the vector's length overflows f64",
                argument: theta,
            });
        }
        finite_result(self.lift(&scaled(v, sinhc(theta))), "exp0")
    }

    /// `asinh(√c|x_s|)/√c · x_s/|x_s|`.
    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        let xs = &x[1..];
        let n = norm(xs);
        if n == 0.0 {
            return Ok(vec![0.0; self.dim]);
        }
        let sc = self.c.sqrt();
        Ok(scaled(xs, (sc * n).asinh() / (sc * n)))
    }

    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        let wp = mean::prepare(self, points, weights)?;
        // Start from the Lorentzian centroid: the weighted sum rescaled onto
        // the hyperboloid (Law et al. 2019), close to the Fréchet mean.
        let s = mean::weighted_sum(&wp, self.dim + 1);
        let q = -minkowski(&s, &s);
        let start = if q > 0.0 && q.is_finite() {
            self.lift(&scaled(&s[1..], 1.0 / (self.c * q).sqrt()))
        } else {
            wp.points[0].to_vec()
        };
        let to_frame = |p: &[f64], u: &[f64]| self.frame_coords(p, u);
        let from_frame = |p: &[f64], v: &[f64]| self.tangent_from_frame(p, v);
        let resolution = |p: &[f64]| f64::EPSILON * norm(&p[1..]).max(1.0 / self.c.sqrt());
        let model = mean::CurvatureModel {
            curvature: -self.c,
            to_frame: &to_frame,
            from_frame: &from_frame,
            resolution: &resolution,
        };
        mean::karcher_flow(self, &wp, start, &model, options)
    }
}
