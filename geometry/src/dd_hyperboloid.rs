//! The hyperboloid with double-double coordinates, [`DdHyperboloid`]: a
//! representation that holds points far from the origin, after Yu & De Sa,
//! "Representing hyperbolic space accurately using multi-component floats"
//! (NeurIPS 2021). docs/GEOMETRY.md, "Beyond f64: a double-double
//! hyperboloid", gives its accuracy, its cost and why it is kept.

use rand::RngCore;

use crate::dd::{Dd, acosh1p_dd, asinh_dd, cosh_sinhc_dd, dot_dd_vec, exp_dd, expm1_dd, sum_sq_dd};
use crate::error::{GeometryError, Result};
use crate::hyperboloid::Hyperboloid;
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    CHECK_TOLERANCE, FAST_PATH_TOLERANCE, MAX_EXP_ARG, acosh1p, check_coords, minkowski, norm,
    standard_normal, tangent_residual,
};

/// The relative size of one rounding in double-double, `2^-104` (the
/// analogue of `f64::EPSILON`): the unit of the representation's resolution.
const DD_EPSILON: f64 = f64::EPSILON * f64::EPSILON;

/// The hyperboloid `H^n_c` of [`Hyperboloid`], with every ambient coordinate
/// a double-double: an unevaluated sum `hi + lo` of two `f64`s with
/// `hi = fl(hi + lo)`, about 106 bits. Far from the origin a coordinate is
/// about `sinh r`, and `f64` coordinates cannot tell apart points closer
/// than one of its ulps (about 1e-3 at radius 30, 5e5 at radius 50);
/// these tell apart points `2^53` times closer (about 1e-19 at radius 30,
/// 6e-11 at radius 50). Like [`Hyperboloid`] it holds points to radius
/// ≈ 355 (`|x_s|^2` overflows beyond: `NotRepresentable`).
///
/// # Layout
/// A point or a tangent vector is `2(n + 1)` `f64`s
/// ([`ambient_dim`](Manifold::ambient_dim)): first the high parts of the
/// `n + 1` ambient coordinates (time first), then their low parts:
///
/// ```text
/// [x0_hi, x1_hi, …, xn_hi,  x0_lo, x1_lo, …, xn_lo]
/// ```
///
/// So the first half of a point is its `f64` rounding, a point of
/// [`Hyperboloid`] ([`to_f64_point`](DdHyperboloid::to_f64_point) returns
/// it). As on [`Hyperboloid`], the time coordinate is implied by the
/// spatial ones (`x_0 = √(1/c + |x_s|^2)`, `v_0 = <x_s, v_s>/x_0`): every
/// operation reads spatial parts, and every result carries the implied
/// time coordinate. Element-wise arithmetic on the flat array (scaling a
/// tangent vector by a float, say) rounds the pairs separately and loses
/// the low parts' precision: build vectors with the crate's maps.
///
/// # What is checked
/// [`check`](Manifold::check) wants every pair of a point normalised and
/// `x_0` equal to `√(1/c + |x_s|^2)` to a relative
/// [`CHECK_TOLERANCE`](DdHyperboloid::CHECK_TOLERANCE) of 1e-28: a point
/// built from `f64` coordinates with zero low parts fails it (its `x_0` is
/// off by 1e-16) and is converted with
/// [`from_f64_point`](DdHyperboloid::from_f64_point) or
/// [`project`](Manifold::project). Tangent vectors are checked as on
/// [`Hyperboloid`] (`|<x,v>_L| ≤ 1e-6 |x||v|`), because their time
/// coordinate is implied anyway.
///
/// # Numerics
/// Every map runs in double-double on the double-double inputs, with every
/// difference of nearby coordinates formed to double-double precision of
/// the difference itself, in the cancellation-free forms of
/// [`Hyperboloid`]: `-c<x,y>_L - 1` as a radial plus an angular part; `log`
/// as `(y - x) - δx`; `geodesic` with non-negative weights. `exp` is
/// written in the plane of the base point's radius and the step:
/// `y_s = A x̂ + (sinh θ/θ) v_⊥`, where for a step back towards the origin
/// `A = sinh(r - θ) + cosh r sinh θ (1 + cos φ)` with
/// `e^{r-θ} = (sinh r + cosh r)/(cosh θ + sinh θ)`, so nothing cancels but
/// what the geometry says. `distance` first tries the plain `f64` formula of
/// [`Hyperboloid`] on the high parts, with its error bound plus the
/// hyperbolic length of the low parts; where that passes (points not
/// close, near the origin) it costs what a [`Hyperboloid`] distance does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdHyperboloid {
    plain: Hyperboloid,
    /// `√c`.
    sc: Dd,
    /// `1/c`.
    inv_c: Dd,
}

impl DdHyperboloid {
    /// The relative tolerance on a point's time coordinate in
    /// [`check`](Manifold::check): `|x_0 - √(1/c + |x_s|^2)| ≤ 1e-28 x_0`.
    pub const CHECK_TOLERANCE: f64 = 1e-28;

    /// `H^n_c` in double-double: dimension `n >= 1` (points have
    /// `2(n + 1)` `f64`s), curvature `-c` with `c > 0`.
    pub fn new(dim: usize, c: f64) -> Result<Self> {
        let plain = Hyperboloid::new(dim, c)?;
        Ok(Self {
            plain,
            sc: Dd::from_f64(c).sqrt(),
            inv_c: Dd::ONE / Dd::from_f64(c),
        })
    }

    /// The curvature parameter `c` (sectional curvature `-c`).
    pub fn c(&self) -> f64 {
        self.plain.c()
    }

    /// The point of this representation at a point `x` of the [`Hyperboloid`]
    /// of the same dimension and curvature (`n + 1` `f64`s, checked there):
    /// its spatial coordinates with zero low parts, and `x_0` recomputed.
    pub fn from_f64_point(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.plain.check(x)?;
        let xs: Vec<Dd> = x[1..].iter().map(|a| Dd::from_f64(*a)).collect();
        self.lift(&xs, "from_f64_point")
    }

    /// The nearest point of the [`Hyperboloid`]: the high parts of the
    /// spatial coordinates (each the `f64` nearest to the coordinate), with
    /// `x_0` recomputed as [`Hyperboloid`] does.
    pub fn to_f64_point(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        finite_layout(self.plain.lift(&x[1..=self.n()]), "to_f64_point")
    }

    fn n(&self) -> usize {
        self.plain.dim()
    }

    /// `f64`s in a point or tangent vector: `2(n + 1)`.
    fn width(&self) -> usize {
        2 * (self.n() + 1)
    }

    /// Ambient coordinate `i` (0 is time), normalised.
    fn coord(&self, x: &[f64], i: usize) -> Dd {
        Dd::sum(x[i], x[self.n() + 1 + i])
    }

    fn spatial(&self, x: &[f64]) -> Vec<Dd> {
        (1..=self.n()).map(|i| self.coord(x, i)).collect()
    }

    /// Checks `x` (see [`Manifold::check`]) and reads it.
    fn read_point(&self, x: &[f64]) -> Result<Point> {
        check_coords(x, self.width())?;
        let n1 = self.n() + 1;
        if let Some(i) = (0..n1).find(|&i| x[i] + x[n1 + i] != x[i]) {
            return Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "every coordinate a normalised double-double, hi = fl(hi + lo) \
                             (residual: |lo| in half-ulps of hi)",
                residual: x[n1 + i].abs() / (0.5 * ulp(x[i])),
                tolerance: 1.0,
            });
        }
        let xs = self.spatial(x);
        let n2 = sum_sq(&xs);
        let x0 = (self.inv_c + n2).sqrt();
        let residual = (self.coord(x, 0) - x0).to_f64().abs() / x0.hi;
        if residual <= Self::CHECK_TOLERANCE {
            Ok(Point { xs, n2, x0 })
        } else {
            Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "<x,x>_L = -1/c with x_0 > 0, x_0 to double-double precision",
                residual,
                tolerance: Self::CHECK_TOLERANCE,
            })
        }
    }

    /// Checks that `v` is a tangent vector at the point `x` (see
    /// [`Manifold::check_tangent`]) and reads both. The residual is that
    /// of [`Hyperboloid`] on the high parts: at a tolerance of 1e-6 the low
    /// parts cannot matter.
    fn read_tangent(&self, x: &[f64], v: &[f64]) -> Result<(Point, Vec<Dd>)> {
        let p = self.read_point(x)?;
        check_coords(v, self.width())?;
        let n1 = self.n() + 1;
        let residual = tangent_residual(minkowski(&x[..n1], &v[..n1]), &x[..n1], &v[..n1]);
        if residual <= CHECK_TOLERANCE {
            Ok((p, self.spatial(v)))
        } else {
            Err(GeometryError::NotTangent {
                manifold: self.name(),
                constraint: "<x,v>_L = 0",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    /// The implied time coordinate `√(1/c + |x_s|^2)`.
    fn time(&self, xs: &[Dd]) -> Dd {
        (self.inv_c + sum_sq(xs)).sqrt()
    }

    /// The point over the spatial coordinates `xs`.
    fn lift(&self, xs: &[Dd], operation: &'static str) -> Result<Vec<f64>> {
        finite_layout(write(self.time(xs), xs), operation)
    }

    /// The tangent vector at `x` (spatial part `xs`, time `x0`) with spatial
    /// part `vs`.
    fn tangent_at(
        &self,
        xs: &[Dd],
        x0: Dd,
        vs: &[Dd],
        operation: &'static str,
    ) -> Result<Vec<f64>> {
        finite_layout(write(dot_dd_vec(xs, vs) / x0, vs), operation)
    }

    /// `t v`, pair by pair in double-double.
    fn scale_tangent(&self, v: &[f64], t: f64) -> Vec<f64> {
        let scaled: Vec<Dd> = (0..=self.n())
            .map(|i| self.coord(v, i).mul_f64(t))
            .collect();
        write(scaled[0], &scaled[1..])
    }

    fn check_exp_arg(&self, theta: f64, operation: &'static str) -> Result<()> {
        if theta > MAX_EXP_ARG {
            return Err(GeometryError::NotRepresentable {
                operation,
                reason: "cosh of the tangent vector's length overflows f64",
                argument: theta,
            });
        }
        Ok(())
    }

    /// `-c<x,y>_L - 1` from the high parts in `f64`, when the plain
    /// formula's error bound plus what the low parts can move it (their
    /// hyperbolic length `L`, at most their Euclidean length, moves
    /// `cosh(√c d) - 1` by at most `sinh(√c d + L) L`) stays within
    /// [`FAST_PATH_TOLERANCE`] of it.
    fn delta_from_high_parts(&self, x: &[f64], y: &[f64]) -> Option<f64> {
        let n1 = self.n() + 1;
        let (d, err) = self.plain.delta_direct(&x[..n1], &y[..n1]);
        let lo = self.c().sqrt() * (norm(&x[n1 + 1..]) + norm(&y[n1 + 1..]));
        if lo.is_nan() || lo > 1e-3 {
            return None;
        }
        let s = (d * (d + 2.0)).sqrt();
        let moved = (s * (1.0 + lo) + (1.0 + d) * 1.001 * lo) * lo;
        (err + moved <= FAST_PATH_TOLERANCE * d).then_some(d)
    }

    /// `-c<x,y>_L - 1` in double-double, without allocating.
    fn delta_dd(&self, x: &[f64], y: &[f64]) -> Dd {
        let (mut n2x, mut n2y, mut sq_diff) = (Dd::ZERO, Dd::ZERO, Dd::ZERO);
        for i in 1..=self.n() {
            let (a, b) = (self.coord(x, i), self.coord(y, i));
            n2x = n2x + a.sqr();
            n2y = n2y + b.sqr();
            sq_diff = sq_diff + (b - a) * (b + a);
        }
        self.delta_from_parts(n2x, n2y, sq_diff, |k, inv_nx| {
            (1..=self.n()).fold(Dd::ZERO, |acc, i| {
                let (a, b) = (self.coord(x, i), self.coord(y, i));
                acc + (k * b - (b - a) * inv_nx).sqr()
            })
        })
    }

    /// The radial and angular parts of `-c<x,y>_L - 1` (see [`Hyperboloid`]),
    /// given `|x_s|^2`, `|y_s|^2` and `Σ (y_i - x_i)(y_i + x_i)`;
    /// `chord2(k, 1/|x_s|)` sums `(k y_i - (y_i - x_i)/|x_s|)^2`, the squared
    /// chord `|x̂_s - ŷ_s|^2` with its differences formed exactly.
    fn delta_from_parts(
        &self,
        n2x: Dd,
        n2y: Dd,
        sq_diff: Dd,
        chord2: impl FnOnce(Dd, Dd) -> Dd,
    ) -> Dd {
        let c = self.c();
        let (nx, ny) = (n2x.sqrt(), n2y.sqrt());
        let (hx, hy) = (
            (Dd::ONE + n2x.mul_f64(c)).sqrt(),
            (Dd::ONE + n2y.mul_f64(c)).sqrt(),
        );
        // sinh(√c (r_y - r_x)) = c (|y|^2 - |x|^2) / (√c (|x| h_y + h_x |y|)).
        let den = self.sc * (nx * hy + hx * ny);
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
        let k = (sq_diff / (nx + ny)) / (nx * ny);
        radial + (nx * ny * chord2(k, Dd::ONE / nx)).mul_f64(0.5 * c)
    }

    /// Orthonormal coordinates of a tangent vector at `p` (as
    /// [`Hyperboloid`]'s means use them): `u_⊥ + (a / cosh r) p_s` for
    /// `u_s = a p_s + u_⊥`, rounded to `f64`.
    fn frame_coords(&self, p: &[f64], u: &[f64]) -> Vec<f64> {
        let (ps, us) = (self.spatial(p), self.spatial(u));
        let n2 = sum_sq(&ps);
        let (a, perp) = split_tangent(&ps, n2, &us);
        let k = a / (Dd::ONE + n2.mul_f64(self.c())).sqrt();
        perp.iter()
            .zip(&ps)
            .map(|(q, s)| (*q + k * *s).to_f64())
            .collect()
    }

    /// The inverse of [`Self::frame_coords`]:
    /// `u_s = ṽ + <p_s, ṽ> c/(1 + cosh r) p_s`.
    fn tangent_from_frame(&self, p: &[f64], v: &[f64]) -> Vec<f64> {
        let ps = self.spatial(p);
        let n2 = sum_sq(&ps);
        let h = (Dd::ONE + n2.mul_f64(self.c())).sqrt();
        let vd: Vec<Dd> = v.iter().map(|a| Dd::from_f64(*a)).collect();
        let k = dot_dd_vec(&ps, &vd).mul_f64(self.c()) / (Dd::ONE + h);
        let us: Vec<Dd> = vd.iter().zip(&ps).map(|(a, s)| *a + k * *s).collect();
        write(dot_dd_vec(&ps, &us) / self.time(&ps), &us)
    }

    /// The Lorentzian centroid `Σ w_i x_i` rescaled onto the hyperboloid, in
    /// double-double, when `-<s,s>_L` is known to a tenth of itself (far out
    /// it is a difference of numbers `e^{2r}` times larger, and lost).
    fn centroid(&self, wp: &mean::WeightedPoints<'_>) -> Option<Vec<f64>> {
        let n = self.n();
        let (mut s0, mut ss) = (Dd::ZERO, vec![Dd::ZERO; n]);
        for (p, w) in wp.points.iter().zip(&wp.weights) {
            let ps = self.spatial(p);
            s0 = s0 + self.time(&ps).mul_f64(*w);
            for (a, b) in ss.iter_mut().zip(&ps) {
                *a = *a + b.mul_f64(*w);
            }
        }
        let (t2, x2) = (s0.sqr(), sum_sq(&ss));
        let q = t2 - x2;
        let err = 8.0 * DD_EPSILON * (t2.hi + x2.hi);
        if q.hi.is_nan() || q.hi <= 0.0 || err > 0.1 * q.hi {
            return None;
        }
        let k = (q.mul_f64(self.c())).sqrt();
        let xs: Vec<Dd> = ss.iter().map(|a| *a / k).collect();
        self.lift(&xs, "frechet_mean").ok()
    }
}

/// `Σ v_i^2` of a double-double vector.
fn sum_sq(v: &[Dd]) -> Dd {
    v.iter().fold(Dd::ZERO, |acc, a| acc + a.sqr())
}

/// `v_s = a x_s + v_⊥` with `v_⊥ ⊥ x_s`: `(a, v_⊥)` (`(0, v_s)` at the origin).
fn split_tangent(xs: &[Dd], n2: Dd, vs: &[Dd]) -> (Dd, Vec<Dd>) {
    if n2.hi == 0.0 {
        return (Dd::ZERO, vs.to_vec());
    }
    let a = dot_dd_vec(xs, vs) / n2;
    (a, xs.iter().zip(vs).map(|(p, q)| *q - a * *p).collect())
}

/// The layout: the time coordinate `t` and the spatial ones `s`, high parts
/// first.
fn write(t: Dd, s: &[Dd]) -> Vec<f64> {
    let n1 = s.len() + 1;
    let mut out = vec![0.0; 2 * n1];
    for (i, d) in std::iter::once(&t).chain(s).enumerate() {
        let d = Dd::sum(d.hi, d.lo);
        out[i] = d.hi;
        out[n1 + i] = d.lo;
    }
    out
}

/// Refuses a result that overflowed. Double-double arithmetic turns an
/// overflow into NaN (`∞ - ∞` in its error terms), and the inputs were
/// finite, so a NaN here is an overflow too, and is named `∞`.
fn finite_layout(v: Vec<f64>, operation: &'static str) -> Result<Vec<f64>> {
    match v.iter().find(|a| !a.is_finite()) {
        None => Ok(v),
        Some(a) => Err(GeometryError::NotRepresentable {
            operation,
            reason: "the result overflows f64",
            argument: if a.is_nan() { f64::INFINITY } else { *a },
        }),
    }
}

/// One ulp of `a` (the gap to the next float away from zero).
fn ulp(a: f64) -> f64 {
    let a = a.abs();
    (f64::from_bits(a.to_bits() + 1) - a).max(f64::MIN_POSITIVE)
}

/// A checked point: its spatial coordinates, `|x_s|^2` and `x_0`.
struct Point {
    xs: Vec<Dd>,
    n2: Dd,
    x0: Dd,
}

/// Two points compared in double-double, every difference formed to
/// double-double precision of the difference itself.
struct Pair {
    xs: Vec<Dd>,
    ys: Vec<Dd>,
    /// `y_s - x_s`.
    diff: Vec<Dd>,
    n2x: Dd,
    x0: Dd,
    y0: Dd,
    /// `y_0 - x_0 = (|y_s|^2 - |x_s|^2) / (x_0 + y_0)`.
    diff0: Dd,
    /// `-c<x,y>_L - 1`.
    delta: Dd,
}

impl Pair {
    fn new(m: &DdHyperboloid, x: Point, y: Point) -> Pair {
        let (xs, ys) = (x.xs, y.xs);
        let mut diff = Vec::with_capacity(xs.len());
        let mut sq_diff = Dd::ZERO;
        for (a, b) in xs.iter().zip(&ys) {
            let d = *b - *a;
            sq_diff = sq_diff + d * (*b + *a);
            diff.push(d);
        }
        let delta = m.delta_from_parts(x.n2, y.n2, sq_diff, |k, inv_nx| {
            ys.iter()
                .zip(&diff)
                .fold(Dd::ZERO, |acc, (b, d)| acc + (k * *b - *d * inv_nx).sqr())
        });
        Pair {
            diff0: sq_diff / (x.x0 + y.x0),
            xs,
            ys,
            diff,
            n2x: x.n2,
            x0: x.x0,
            y0: y.x0,
            delta,
        }
    }
}

impl Manifold for DdHyperboloid {
    fn name(&self) -> &'static str {
        "dd_hyperboloid"
    }

    fn dim(&self) -> usize {
        self.n()
    }

    fn ambient_dim(&self) -> usize {
        self.width()
    }

    /// Accepts `x` when every pair is normalised (`hi = fl(hi + lo)`) and
    /// `x_0` is within [`DdHyperboloid::CHECK_TOLERANCE`] (relative) of
    /// `√(1/c + |x_s|^2)`.
    fn check(&self, x: &[f64]) -> Result<()> {
        self.read_point(x).map(|_| ())
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        self.read_tangent(x, v).map(|_| ())
    }

    /// Reads each pair as the exact sum `hi + lo` (normalising it), keeps the
    /// spatial coordinates and sets `x_0 = √(1/c + |x_s|^2)`.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_coords(x, self.width())?;
        self.lift(&self.spatial(x), "project")
    }

    /// `v + c<x,v>_L x`, in double-double.
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        let Point { xs, x0, .. } = self.read_point(x)?;
        check_coords(v, self.width())?;
        let vs = self.spatial(v);
        let k = (dot_dd_vec(&xs, &vs) - x0 * self.coord(v, 0)).mul_f64(self.c());
        let ws: Vec<Dd> = vs.iter().zip(&xs).map(|(q, p)| *q + k * *p).collect();
        self.tangent_at(&xs, x0, &ws, "project_tangent")
    }

    /// The plain formula on the high parts where its bound allows, else
    /// double-double; `+∞` for NaN input or a wrong length.
    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        let w = self.width();
        if x.len() != w || y.len() != w || x.iter().chain(y).any(|a| a.is_nan()) {
            return f64::INFINITY;
        }
        let delta = match self.delta_from_high_parts(x, y) {
            Some(d) => d,
            None => self.delta_dd(x, y).to_f64(),
        };
        acosh1p(delta) / self.c().sqrt()
    }

    /// In the plane of `x`'s radius and `v` (see the type's docs); `v` at
    /// the origin gives `(sinh θ/θ) v`.
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        let (Point { xs, n2, .. }, vs) = self.read_tangent(x, v)?;
        let c = self.c();
        let (a, perp) = split_tangent(&xs, n2, &vs);
        let h = (Dd::ONE + n2.mul_f64(c)).sqrt(); // cosh r
        let s = self.sc * n2.sqrt(); // sinh r
        // The step's radial and transverse lengths (unit curvature).
        let rho = if n2.hi > 0.0 { a * s / h } else { Dd::ZERO };
        let q2 = sum_sq(&perp).mul_f64(c);
        let theta = (q2 + rho.sqr()).sqrt();
        if theta.hi == 0.0 {
            return Ok(x.to_vec());
        }
        self.check_exp_arg(theta.hi, "exp")?;
        let (ch, shc) = cosh_sinhc_dd(theta);
        if n2.hi == 0.0 {
            let ys: Vec<Dd> = vs.iter().map(|q| shc * *q).collect();
            return self.lift(&ys, "exp");
        }
        // The coefficient A of x̂ in √c y_s = A x̂ + √c (sinh θ/θ) v_⊥.
        let along = if rho.hi >= 0.0 {
            s * ch + h * shc * rho
        } else {
            let e = (s + h) / (ch + shc * theta); // e^(r - θ)
            (e - Dd::ONE / e).mul_f64(0.5) + h * shc * q2 / (theta - rho)
        };
        let k = along / s;
        let ys: Vec<Dd> = xs
            .iter()
            .zip(&perp)
            .map(|(p, q)| k * *p + shc * *q)
            .collect();
        self.lift(&ys, "exp")
    }

    /// `(θ / sinh θ) ((y - x) - δ x)` with `δ = -c<x,y>_L - 1`,
    /// `θ = acosh(1 + δ)`, `sinh θ = √(δ(2 + δ))`, all in double-double.
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        let p = Pair::new(self, self.read_point(x)?, self.read_point(y)?);
        let delta = p.delta;
        let theta = acosh1p_dd(delta);
        let k = if theta.hi > 0.0 {
            theta / (delta * (delta + Dd::from_f64(2.0))).sqrt()
        } else {
            Dd::ONE
        };
        let vs: Vec<Dd> = p
            .diff
            .iter()
            .zip(&p.xs)
            .map(|(d, a)| k * (*d - delta * *a))
            .collect();
        self.tangent_at(&p.xs, p.x0, &vs, "log")
    }

    /// For `0 ≤ t ≤ 1`, `(sinh((1-t)θ) x + sinh(tθ) y) / sinh θ` in
    /// double-double, each ratio as `e^(u-θ) (1 - e^(-2u)) / (1 - e^(-2θ))`
    /// (finite for every `θ`); other `t` go through `log` and `exp`.
    fn geodesic(&self, x: &[f64], y: &[f64], t: f64) -> Result<Vec<f64>> {
        if !(0.0..=1.0).contains(&t) {
            let v = self.log(x, y)?;
            return self.exp(x, &self.scale_tangent(&v, t));
        }
        let (px, py) = (self.read_point(x)?, self.read_point(y)?);
        let theta = acosh1p_dd(self.delta_dd(x, y));
        if theta.hi == 0.0 {
            return Ok(x.to_vec());
        }
        let denom = expm1_dd(theta.mul_f64(-2.0));
        let ratio = |u: Dd| exp_dd(u - theta) * expm1_dd(u.mul_f64(-2.0)) / denom;
        let u = theta.mul_f64(t);
        let (a, b) = (ratio(theta - u), ratio(u));
        let gs: Vec<Dd> = px
            .xs
            .iter()
            .zip(&py.xs)
            .map(|(p, q)| a * *p + b * *q)
            .collect();
        self.lift(&gs, "geodesic")
    }

    fn origin(&self) -> Vec<f64> {
        write(self.inv_c.sqrt(), &vec![Dd::ZERO; self.n()])
    }

    /// `exp0` of a standard normal vector: hyperbolic radius about `√n`.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        let v = standard_normal(rng, self.n());
        self.exp0(&v).unwrap_or_else(|_| self.origin())
    }

    /// `<u_⊥, v_⊥> + u_∥ v_∥ / (1 + c|x_s|^2)` in double-double (`∥` along
    /// `x_s`), the time coordinates implied by tangency.
    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        let (Point { xs, n2, .. }, us) = self.read_tangent(x, u)?;
        let (_, vs) = self.read_tangent(x, v)?;
        let (au, pu) = split_tangent(&xs, n2, &us);
        let (av, pv) = split_tangent(&xs, n2, &vs);
        let along = au * av * n2 / (Dd::ONE + n2.mul_f64(self.c()));
        Ok((dot_dd_vec(&pu, &pv) + along).to_f64())
    }

    /// `v + k (x + y)`, `k = c<y,v>_L / (2 + δ)`, with
    /// `<y,v>_L = (a/c)((y_0 - x_0)/x_0 - δ) + <(y_s - x_s)_⊥, v_⊥>`
    /// (`v_s = a x_s + v_⊥`, `⊥` across `x_s`), in double-double. Far out
    /// `y_s - x_s` is mostly along `x_s`, `cosh r` times longer than its
    /// part across, and the rounding left along `x_s` in `v_⊥` would be
    /// multiplied by it: both are taken across `x_s`.
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        let (px, vs) = self.read_tangent(x, v)?;
        let p = Pair::new(self, px, self.read_point(y)?);
        let (a, perp) = split_tangent(&p.xs, p.n2x, &vs);
        let (_, diff_perp) = split_tangent(&p.xs, p.n2x, &p.diff);
        let yv = a * self.inv_c * (p.diff0 / p.x0 - p.delta) + dot_dd_vec(&diff_perp, &perp);
        let k = yv.mul_f64(self.c()) / (Dd::from_f64(2.0) + p.delta);
        let ws: Vec<Dd> = vs
            .iter()
            .zip(p.xs.iter().zip(&p.ys))
            .map(|(q, (s, t))| *q + k * (*s + *t))
            .collect();
        self.tangent_at(&p.ys, p.y0, &ws, "parallel_transport")
    }

    /// `(cosh(√c|v|)/√c, sinh(√c|v|) v / (√c|v|))`, in double-double from
    /// the `f64` vector `v`.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.n())?;
        let theta = self.sc * sum_sq_dd(v).sqrt();
        self.check_exp_arg(theta.hi, "exp0")?;
        let (_, shc) = cosh_sinhc_dd(theta);
        let ys: Vec<Dd> = v.iter().map(|a| shc.mul_f64(*a)).collect();
        self.lift(&ys, "exp0")
    }

    /// `asinh(√c|x_s|)/√c · x_s/|x_s|`, rounded to `f64`: the bridge to
    /// Euclidean vectors keeps `f64` precision only (a point at radius `r`
    /// comes back to about `r · 1e-16`).
    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        let Point { xs, n2, .. } = self.read_point(x)?;
        let s = self.sc * n2.sqrt();
        if s.hi == 0.0 {
            return Ok(vec![0.0; self.n()]);
        }
        let k = asinh_dd(s) / s;
        Ok(xs.iter().map(|a| (k * *a).to_f64()).collect())
    }

    /// The Karcher flow of [`Hyperboloid`] (Newton steps in an orthonormal
    /// frame, solved in `f64`), with this representation's `log`, `exp` and
    /// distance; it starts from the Lorentzian centroid where double-double
    /// holds it (to radius ≈ 35), else from the heaviest point.
    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        let wp = mean::prepare(self, points, weights)?;
        let heaviest = (0..wp.weights.len()).fold(0, |best, i| {
            if wp.weights[i] > wp.weights[best] {
                i
            } else {
                best
            }
        });
        let start = self
            .centroid(&wp)
            .unwrap_or_else(|| wp.points[heaviest].to_vec());
        let to_frame = |p: &[f64], u: &[f64]| self.frame_coords(p, u);
        let from_frame = |p: &[f64], v: &[f64]| self.tangent_from_frame(p, v);
        let n = self.n();
        let resolution = |p: &[f64]| DD_EPSILON * norm(&p[1..=n]).max(1.0 / self.c().sqrt());
        let model = mean::CurvatureModel {
            curvature: -self.c(),
            to_frame: &to_frame,
            from_frame: &from_frame,
            resolution: &resolution,
        };
        mean::karcher_flow(self, &wp, start, &model, options)
    }
}
