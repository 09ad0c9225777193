//! de Sitter space `dS^n` and the Lorentzian cost space.

use rand::RngCore;

use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{FrechetMean, FrechetOptions};
use crate::numeric::{
    CHECK_TOLERANCE, MAX_EXP_ARG, acosh1p, check_coords, check_curvature, check_dim, finite_result,
    inv_sinc, inv_sinhc, lin2, minkowski, nan_to_inf, norm, norm_sq, scaled, sinc, sinhc,
    standard_normal, tangent_residual,
};

/// How two events are separated in a Lorentzian space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntervalKind {
    /// Negative squared interval: one event can cause the other.
    Timelike,
    /// Positive squared interval: neither can reach the other.
    Spacelike,
    /// Zero squared interval (within [`LIGHTLIKE_TOLERANCE`]): on the light cone.
    Lightlike,
}

/// The squared interval counts as zero when its magnitude is at most this
/// fraction of `Δt^2 + |Δx|^2` (the Euclidean size of the separation).
pub const LIGHTLIKE_TOLERANCE: f64 = 1e-12;

/// An interval between two events, classified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Timelike, spacelike or lightlike.
    pub kind: IntervalKind,
    /// The signed squared interval `-Δt^2 + Σ Δx_i^2` (0 when lightlike).
    pub squared: f64,
    /// `sqrt(|squared|)`: proper time (timelike) or proper distance
    /// (spacelike); 0 when lightlike.
    pub magnitude: f64,
}

impl Interval {
    /// Classifies a separation vector `(Δt, Δx_1, …)` of the Minkowski metric
    /// `-dt^2 + Σ dx_i^2`.
    fn of_separation(d: &[f64]) -> Self {
        let squared = minkowski(d, d);
        let size = norm_sq(d);
        if squared.abs() <= LIGHTLIKE_TOLERANCE * size {
            Self {
                kind: IntervalKind::Lightlike,
                squared: 0.0,
                magnitude: 0.0,
            }
        } else if squared < 0.0 {
            Self {
                kind: IntervalKind::Timelike,
                squared,
                magnitude: (-squared).sqrt(),
            }
        } else {
            Self {
                kind: IntervalKind::Spacelike,
                squared,
                magnitude: squared.sqrt(),
            }
        }
    }
}

/// The interval between two points of the 4-D cost space `(τ, μ, ε, $)` —
/// time (compute), memory, energy, dollars — under the Lorentzian metric
/// `ds^2 = -dτ^2 + dμ^2 + dε^2 + d$^2` of the HVS specification.
///
/// A timelike interval means the time difference dominates the resource
/// differences (the two plans are causally ordered: one can be reached from
/// the other within its time budget); spacelike means the resource
/// differences dominate. Non-finite coordinates are refused.
pub fn lorentzian_cost_distance(c1: [f64; 4], c2: [f64; 4]) -> Result<Interval> {
    check_coords(&c1, 4)?;
    check_coords(&c2, 4)?;
    let d: Vec<f64> = c1.iter().zip(&c2).map(|(a, b)| a - b).collect();
    Ok(Interval::of_separation(&d))
}

/// `true` when the cost point `later` lies in the causal future of
/// `earlier`: the interval is timelike or lightlike and `τ` grows.
pub fn causally_precedes(earlier: [f64; 4], later: [f64; 4]) -> Result<bool> {
    let i = lorentzian_cost_distance(earlier, later)?;
    Ok(i.kind != IntervalKind::Spacelike && later[0] > earlier[0])
}

/// de Sitter space `{x ∈ R^{n+1} : <x,x>_L = 1/c}` (radius `R = 1/√c`),
/// the Lorentzian analogue of the sphere: constant positive curvature `c`,
/// metric of signature `(-, +, …, +)`.
///
/// # What `distance` means here
/// A Lorentzian metric has no distance function: the squared length of a
/// curve can be negative, zero or positive, and lightlike separated points
/// are at "length" zero although distinct. So the triangle inequality and
/// `d(x, y) = 0 ⇒ x = y` fail, and there is no Fréchet mean
/// ([`frechet_mean`](Manifold::frechet_mean) answers
/// [`GeometryError::Unsupported`]). [`distance`](Manifold::distance) is the
/// magnitude of the ambient interval of the chord, `sqrt(|<x-y, x-y>_L|)`:
/// symmetric, zero on the diagonal, invariant under every Lorentz
/// transformation, defined for every pair, and of the same sign class as
/// the geodesic joining the points when one exists (see
/// [`DeSitter::interval`] for the classification and
/// [`DeSitter::geodesic_interval`] for the length along the geodesic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeSitter {
    dim: usize,
    c: f64,
}

impl DeSitter {
    /// `dS^n` (points have `n + 1` coordinates, time first) of curvature `c > 0`.
    pub fn new(dim: usize, c: f64) -> Result<Self> {
        Ok(Self {
            dim: check_dim(dim)?,
            c: check_curvature(c)?,
        })
    }

    /// The curvature `c`.
    pub fn c(&self) -> f64 {
        self.c
    }

    fn radius(&self) -> f64 {
        1.0 / self.c.sqrt()
    }

    /// The chord interval `<x-y, x-y>_L` of two points, classified. Its sign
    /// is that of the geodesic joining them: `c<x,y>_L > 1` (timelike) exactly
    /// when the chord is timelike, since `<x-y,x-y>_L = 2/c - 2<x,y>_L`.
    pub fn interval(&self, x: &[f64], y: &[f64]) -> Result<Interval> {
        self.check(x)?;
        self.check(y)?;
        let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
        Ok(Interval::of_separation(&d))
    }

    /// The length along the geodesic joining `x` and `y`: proper time
    /// `R acosh(c<x,y>_L)` when timelike, proper distance `R acos(c<x,y>_L)`
    /// when spacelike, 0 when lightlike. Points with `c<x,y>_L < -1` are
    /// joined by no geodesic ([`GeometryError::NoGeodesic`]).
    pub fn geodesic_interval(&self, x: &[f64], y: &[f64]) -> Result<Interval> {
        let chord = self.interval(x, y)?;
        let alpha = self.geodesic_angle(chord)?;
        let magnitude = self.radius() * alpha;
        let squared = match chord.kind {
            IntervalKind::Timelike => -magnitude * magnitude,
            _ => magnitude * magnitude,
        };
        Ok(Interval {
            kind: chord.kind,
            squared,
            magnitude,
        })
    }

    /// `α = √c ·` geodesic length, from the chord (`z = c<x,y>_L = 1 - c q / 2`).
    fn geodesic_angle(&self, chord: Interval) -> Result<f64> {
        let q = chord.squared;
        match chord.kind {
            IntervalKind::Lightlike => Ok(0.0),
            IntervalKind::Timelike => Ok(acosh1p(-self.c * q / 2.0)),
            IntervalKind::Spacelike => {
                let s = (self.c * q / 4.0).sqrt(); // sin(α/2)
                if s > 1.0 + 1e-12 {
                    Err(GeometryError::NoGeodesic {
                        manifold: "de_sitter",
                        reason: "c<x,y>_L < -1: no geodesic joins the points",
                    })
                } else {
                    Ok(2.0 * s.min(1.0).asin())
                }
            }
        }
    }

    fn tangent_at_origin(&self, v: &[f64]) -> Vec<f64> {
        // The tangent space at the origin (0, R, 0, …) is {v : v_1 = 0}.
        let mut t = Vec::with_capacity(self.dim + 1);
        t.push(v[0]);
        t.push(0.0);
        t.extend_from_slice(&v[1..]);
        t
    }
}

impl Manifold for DeSitter {
    fn name(&self) -> &'static str {
        "de_sitter"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ambient_dim(&self) -> usize {
        self.dim + 1
    }

    /// Accepts `x` when `|x_s|` is within [`CHECK_TOLERANCE`] (relative) of
    /// `sqrt(1/c + x_0^2)`.
    fn check(&self, x: &[f64]) -> Result<()> {
        check_coords(x, self.dim + 1)?;
        let expected = (1.0 / self.c + x[0] * x[0]).sqrt();
        let residual = (norm(&x[1..]) - expected).abs() / expected;
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "<x,x>_L = 1/c",
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

    /// Keeps the time coordinate and rescales the spatial part to length
    /// `sqrt(1/c + x_0^2)`; a zero spatial part is put along the first
    /// spatial axis.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_coords(x, self.dim + 1)?;
        let target = (1.0 / self.c + x[0] * x[0]).sqrt();
        let n = norm(&x[1..]);
        let mut y = x.to_vec();
        if n == 0.0 {
            y[1] = target;
        } else {
            for a in &mut y[1..] {
                *a *= target / n;
            }
        }
        finite_result(y, "project")
    }

    /// `v - c<x,v>_L x`.
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        finite_result(
            lin2(1.0, v, -self.c * minkowski(x, v), x),
            "project_tangent",
        )
    }

    /// `sqrt(|<x-y, x-y>_L|)`; see the type's docs for why.
    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        match (x.split_first(), y.split_first()) {
            (Some((x0, xs)), Some((y0, ys))) => {
                let s: f64 = xs.iter().zip(ys).map(|(a, b)| (a - b).powi(2)).sum();
                nan_to_inf((s - (x0 - y0).powi(2)).abs().sqrt())
            }
            _ => 0.0,
        }
    }

    /// The geodesic with velocity `v`: `cos(α) x + sin(α)/α · v` for spacelike
    /// `v`, `cosh(α) x + sinh(α)/α · v` for timelike, `x + v` for null, with
    /// `α = √c sqrt(|<v,v>_L|)`.
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let vv = minkowski(v, v);
        let alpha = (self.c * vv.abs()).sqrt();
        let y = if vv.abs() <= LIGHTLIKE_TOLERANCE * norm_sq(v) {
            lin2(1.0, x, 1.0, v)
        } else if vv > 0.0 {
            lin2(alpha.cos(), x, sinc(alpha), v)
        } else {
            if alpha > MAX_EXP_ARG {
                return Err(GeometryError::NotRepresentable {
                    operation: "exp",
                    reason: "cosh or sinh of the argument overflows f64",
                    argument: alpha,
                });
            }
            lin2(alpha.cosh(), x, sinhc(alpha), v)
        };
        self.project(&y)
    }

    /// The inverse of `exp` where a unique geodesic joins the points:
    /// `α/sin(α) · (y - c<x,y>_L x)` (spacelike), `α/sinh(α) · (…)`
    /// (timelike), `y - x` (lightlike).
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        let chord = self.interval(x, y)?;
        let alpha = self.geodesic_angle(chord)?;
        let k = match chord.kind {
            IntervalKind::Lightlike => 1.0,
            IntervalKind::Timelike => inv_sinhc(alpha),
            IntervalKind::Spacelike => {
                if alpha > std::f64::consts::PI - 1e-9 {
                    return Err(GeometryError::NoGeodesic {
                        manifold: "de_sitter",
                        reason: "the points are antipodal (c<x,y>_L = -1)",
                    });
                }
                inv_sinc(alpha)
            }
        };
        // y - c<x,y>_L x with c<x,y>_L = 1 - c q / 2.
        let z = 1.0 - self.c * chord.squared / 2.0;
        finite_result(scaled(&lin2(1.0, y, -z, x), k), "log")
    }

    fn origin(&self) -> Vec<f64> {
        let mut o = vec![0.0; self.dim + 1];
        o[1] = self.radius();
        o
    }

    /// Time coordinate `R · N(0, 1)`, spatial direction uniform.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        let g = standard_normal(rng, self.dim + 1);
        let mut x = g.clone();
        x[0] *= self.radius();
        if norm(&x[1..]) < 1e-12 {
            x[1] = 1.0;
        }
        // Finite input, so `project` cannot fail; fall back to the origin anyway.
        self.project(&x).unwrap_or_else(|_| self.origin())
    }

    /// The Minkowski inner product (indefinite).
    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, u)?;
        self.check_tangent(x, v)?;
        Ok(minkowski(u, v))
    }

    /// `sqrt(|<v,v>_L|)`.
    fn norm(&self, x: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, v)?;
        Ok(minkowski(v, v).abs().sqrt())
    }

    /// `v - <y,v>_L / (1/c + <x,y>_L) · (x + y)`, the Levi-Civita transport
    /// along the geodesic (the sphere's formula with the Lorentz product).
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let chord = self.interval(x, y)?;
        self.geodesic_angle(chord)?;
        // 1/c + <x,y>_L = 2/c - q/2.
        let den = 2.0 / self.c - chord.squared / 2.0;
        if den.abs() < 1e-12 / self.c {
            return Err(GeometryError::NoGeodesic {
                manifold: "de_sitter",
                reason: "the points are antipodal (c<x,y>_L = -1)",
            });
        }
        let k = minkowski(y, v) / den;
        finite_result(
            v.iter()
                .zip(x.iter().zip(y))
                .map(|(vi, (xi, yi))| vi - k * (xi + yi))
                .collect(),
            "parallel_transport",
        )
    }

    /// Intrinsic coordinates `(t, s_1, …, s_{n-1})` at the origin
    /// `(0, R, 0, …)`: time first, orthonormal for the Lorentz metric.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim)?;
        self.exp(&self.origin(), &self.tangent_at_origin(v))
    }

    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        let t = self.log(&self.origin(), x)?;
        let mut v = Vec::with_capacity(self.dim);
        v.push(t[0]);
        v.extend_from_slice(&t[2..]);
        Ok(v)
    }

    fn frechet_mean(
        &self,
        _points: &[&[f64]],
        _weights: Option<&[f64]>,
        _options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        Err(GeometryError::Unsupported {
            operation: "frechet_mean",
            manifold: self.name(),
        })
    }
}
