//! Weighted Fréchet (Karcher) means.
//!
//! The mean of points `x_i` with weights `w_i` is the minimiser of
//! `f(p) = Σ w_i d(p, x_i)^2 / Σ w_i`. Its Riemannian gradient is
//! `-2 Σ w_i log_p(x_i) / Σ w_i`.
//!
//! On the spaces of constant curvature `K` the Hessian of `½ d(·, x)^2` is
//! known in closed form: 1 along the geodesic to `x`, and
//! `κ(d) = √-K d coth(√-K d)` (or `√K d cot(√K d)`) across it. So each
//! iteration takes the Riemannian Newton step `p ← exp_p(H^{-1} g)`, with
//! `g = Σ w_i log_p(x_i)` and `H` that Hessian summed over the points —
//! quadratic convergence where the plain Karcher flow `p ← exp_p(g)`
//! converges only linearly, and slowly on spread-out hyperbolic data, where
//! `κ(d) ≈ d` makes it overshoot. A Newton step that does not lower the
//! objective (far from the mean, where `H` may not be positive definite) is
//! replaced by a gradient step `exp_p(η g)` with `η` halved until `f` does not
//! increase. Each manifold starts from a closed-form guess (the Lorentzian
//! centroid on the hyperboloid, the gyromidpoint in the Poincaré ball, the
//! normalised extrinsic mean on the sphere), so a handful of iterations
//! suffice.

use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::numeric::scaled;

/// How a Fréchet mean is computed.
#[derive(Debug, Clone, PartialEq)]
pub struct FrechetOptions {
    /// Iterations of the Karcher flow before giving up (reporting
    /// `converged: false`). Default 256.
    pub max_iterations: usize,
    /// Stop when the gradient norm falls to `tolerance` times the root mean
    /// square distance of the points from the current estimate — a scale-free
    /// measure of how balanced the points are around it — or to the
    /// resolution floor of [`FrechetMean::converged`]. Default 1e-10.
    pub tolerance: f64,
    /// Where to start; `None` uses the manifold's closed-form guess.
    pub initial: Option<Vec<f64>>,
}

impl Default for FrechetOptions {
    fn default() -> Self {
        Self {
            max_iterations: 256,
            tolerance: 1e-10,
            initial: None,
        }
    }
}

/// A Fréchet mean with its convergence report.
#[derive(Debug, Clone, PartialEq)]
pub struct FrechetMean {
    /// The mean, a point of the manifold.
    pub mean: Vec<f64>,
    /// Iterations of the Karcher flow used (0 for closed forms).
    pub iterations: usize,
    /// Whether `mean` meets the tolerance: `gradient_norm ≤ max(tolerance ·
    /// √variance, 4 (n + 4) ρ)`, where `ρ` is the resolution of `f64`
    /// coordinates at the mean (docs/GEOMETRY.md; below it no `f64` point is
    /// measurably closer to the exact mean). Copies of a single point are
    /// their own mean at once. `false` means the iteration budget ran out or
    /// no step lowered the objective before the tolerance was met; `mean` is
    /// then the best point found.
    pub converged: bool,
    /// `|Σ w_i log_mean(x_i)| / Σ w_i` at the answer: half the norm of the
    /// Riemannian gradient of the objective.
    pub gradient_norm: f64,
    /// `Σ w_i d(mean, x_i)^2 / Σ w_i`, the weighted Fréchet variance.
    pub variance: f64,
}

/// Points with positive weight and their weights normalised to sum 1.
pub(crate) struct WeightedPoints<'a> {
    pub(crate) points: Vec<&'a [f64]>,
    pub(crate) weights: Vec<f64>,
}

/// Checks every point and weight; drops zero-weight points.
pub(crate) fn prepare<'a, M: Manifold + ?Sized>(
    m: &M,
    points: &[&'a [f64]],
    weights: Option<&[f64]>,
) -> Result<WeightedPoints<'a>> {
    if let Some(w) = weights {
        if w.len() != points.len() {
            return Err(GeometryError::InvalidWeights {
                reason: format!("{} weights for {} points", w.len(), points.len()),
            });
        }
        if let Some((i, v)) = w
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite() || **v < 0.0)
        {
            return Err(GeometryError::InvalidWeights {
                reason: format!("weight {i} is {v}; weights must be finite and >= 0"),
            });
        }
    }
    for p in points {
        m.check(p)?;
    }
    let mut kept = WeightedPoints {
        points: Vec::new(),
        weights: Vec::new(),
    };
    for (i, p) in points.iter().enumerate() {
        let w = weights.map_or(1.0, |w| w[i]);
        if w > 0.0 {
            kept.points.push(p);
            kept.weights.push(w);
        }
    }
    let total: f64 = kept.weights.iter().sum();
    if kept.points.is_empty() || total <= 0.0 {
        return Err(GeometryError::EmptyInput);
    }
    if !total.is_finite() {
        return Err(GeometryError::InvalidWeights {
            reason: "weights sum to infinity".into(),
        });
    }
    for w in &mut kept.weights {
        *w /= total;
    }
    Ok(kept)
}

/// `Σ w_i x_i` over ambient coordinates.
pub(crate) fn weighted_sum(wp: &WeightedPoints<'_>, len: usize) -> Vec<f64> {
    let mut s = vec![0.0; len];
    for (p, w) in wp.points.iter().zip(&wp.weights) {
        for (a, b) in s.iter_mut().zip(p.iter()) {
            *a += w * b;
        }
    }
    s
}

fn variance<M: Manifold + ?Sized>(m: &M, wp: &WeightedPoints<'_>, p: &[f64]) -> f64 {
    wp.points
        .iter()
        .zip(&wp.weights)
        .map(|(x, w)| w * m.distance_unchecked(p, x).powi(2))
        .sum()
}

/// Maps a tangent vector at `p` to or from frame coordinates.
pub(crate) type FrameFn<'a> = dyn Fn(&[f64], &[f64]) -> Vec<f64> + 'a;

/// What the Newton step needs of a manifold of constant curvature: the
/// curvature, a frame of each tangent space in which the metric is the
/// Euclidean dot product, and the resolution of the coordinates.
///
/// The frame matters far out: on the hyperboloid at radius `r` a tangent
/// vector's ambient coordinates are up to `cosh r` times its length, so a
/// Newton system written in them is ill-conditioned by `cosh^2 r`; in an
/// orthonormal frame it is as well-conditioned as at the origin.
pub(crate) struct CurvatureModel<'a> {
    /// Sectional curvature `K` (negative for hyperbolic spaces).
    pub(crate) curvature: f64,
    /// Coordinates of a tangent vector at `p` in which `<u, v>_p = ũ · ṽ`.
    pub(crate) to_frame: &'a FrameFn<'a>,
    /// The inverse of `to_frame`: a tangent vector at `p` in ambient coordinates.
    pub(crate) from_frame: &'a FrameFn<'a>,
    /// The metric length of one ulp of `p`'s coordinates: no `f64` point is
    /// closer than about this to the exact mean.
    pub(crate) resolution: &'a dyn Fn(&[f64]) -> f64,
}

/// The logs of every point at `p` in frame coordinates, and their weighted
/// sum `g` (half the negative gradient of the objective).
fn frame_logs<M: Manifold + ?Sized>(
    m: &M,
    wp: &WeightedPoints<'_>,
    model: &CurvatureModel<'_>,
    p: &[f64],
) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let mut g: Vec<f64> = Vec::new();
    let mut logs = Vec::with_capacity(wp.points.len());
    for (x, w) in wp.points.iter().zip(&wp.weights) {
        let l = (model.to_frame)(p, &m.log(p, x)?);
        if g.is_empty() {
            g = vec![0.0; l.len()];
        }
        for (a, b) in g.iter_mut().zip(&l) {
            *a += w * b;
        }
        logs.push(l);
    }
    Ok((logs, g))
}

/// `Σ w_i log_p(x_i)` projected on the tangent space (near the mean its
/// terms cancel, and what is left would otherwise be dominated by rounding
/// normal to the manifold).
fn mean_log<M: Manifold + ?Sized>(m: &M, wp: &WeightedPoints<'_>, p: &[f64]) -> Result<Vec<f64>> {
    let mut g = vec![0.0; p.len()];
    for (x, w) in wp.points.iter().zip(&wp.weights) {
        for (a, b) in g.iter_mut().zip(&m.log(p, x)?) {
            *a += w * b;
        }
    }
    m.project_tangent(p, &g)
}

/// `κ(d) = s coth s` (K < 0) or `s cot s` (K > 0), `s = √|K| d`: the
/// Hessian of `½ d^2` across the geodesic.
fn kappa(curvature: f64, d: f64) -> f64 {
    let s = curvature.abs().sqrt() * d;
    if s < 1e-6 {
        return 1.0 - curvature.signum() * s * s / 3.0;
    }
    if curvature < 0.0 {
        s / s.tanh()
    } else {
        s / s.tan()
    }
}

/// Solves `H v = g` for the Newton direction in frame coordinates,
/// `H = K̄ I + Σ α_i u_i u_i^T` with `K̄ = Σ w_i κ_i` and
/// `α_i = w_i (1 - κ_i) / d_i^2`.
fn newton_direction(
    wp: &WeightedPoints<'_>,
    model: &CurvatureModel<'_>,
    logs: &[Vec<f64>],
    g: &[f64],
) -> Option<Vec<f64>> {
    let n = g.len();
    let mut h = nalgebra::DMatrix::<f64>::zeros(n, n);
    let mut k_bar = 0.0;
    for (w, u) in wp.weights.iter().zip(logs) {
        let d = crate::numeric::norm(u);
        let k = kappa(model.curvature, d);
        if !(k.is_finite() && k > 0.0) {
            return None; // beyond the conjugate radius: no Newton step
        }
        k_bar += w * k;
        if d > 0.0 {
            let alpha = w * (1.0 - k) / (d * d);
            for (r, ur) in u.iter().enumerate() {
                for (c, uc) in u.iter().enumerate() {
                    h[(r, c)] += alpha * ur * uc;
                }
            }
        }
    }
    for i in 0..n {
        h[(i, i)] += k_bar;
    }
    let v = h.lu().solve(&nalgebra::DVector::from_column_slice(g))?;
    let v: Vec<f64> = v.iter().copied().collect();
    v.iter().all(|a| a.is_finite()).then_some(v)
}

/// The report for a point computed in closed form (no iteration).
pub(crate) fn closed_form<M: Manifold + ?Sized>(
    m: &M,
    wp: &WeightedPoints<'_>,
    mean: Vec<f64>,
) -> Result<FrechetMean> {
    let g = mean_log(m, wp, &mean)?;
    Ok(FrechetMean {
        gradient_norm: m.norm(&mean, &g)?,
        variance: variance(m, wp, &mean),
        mean,
        iterations: 0,
        converged: true,
    })
}

/// Runs the Newton / Karcher iteration from `initial` (or `options.initial`).
///
/// Converged means `|Σ w_i log_p(x_i)| ≤ max(tolerance · RMS distance,
/// 4 (n + 4) ρ(p))`, where `ρ(p)` is the resolution of the coordinates at
/// `p`: below that floor no `f64` point is measurably closer to the mean.
pub(crate) fn karcher_flow<M: Manifold + ?Sized>(
    m: &M,
    wp: &WeightedPoints<'_>,
    initial: Vec<f64>,
    model: &CurvatureModel<'_>,
    options: &FrechetOptions,
) -> Result<FrechetMean> {
    if let Some(start) = &options.initial {
        m.check(start)?;
    }
    // Copies of one point: that point is their mean, exactly and at once.
    if wp.points.windows(2).all(|w| w[0] == w[1]) {
        return Ok(FrechetMean {
            mean: wp.points[0].to_vec(),
            iterations: 0,
            converged: true,
            gradient_norm: 0.0,
            variance: 0.0,
        });
    }
    let mut p = options.initial.clone().unwrap_or(initial);
    let mut f = variance(m, wp, &p);
    let mut step = 1.0_f64;
    let mut iterations = 0;
    // A step that raises `f` by no more than its rounding is still taken:
    // near the mean, changes of `f` fall below it.
    let no_worse = |fc: f64, f: f64| fc <= f * (1.0 + 8.0 * f64::EPSILON);
    loop {
        let (logs, g) = frame_logs(m, wp, model, &p)?;
        let gradient_norm = crate::numeric::norm(&g);
        let floor = 4.0 * (g.len() as f64 + 4.0) * (model.resolution)(&p);
        let converged = gradient_norm <= (options.tolerance * f.sqrt()).max(floor);
        let report = |p: Vec<f64>, iterations, f| FrechetMean {
            mean: p,
            iterations,
            converged,
            gradient_norm,
            variance: f,
        };
        if converged || iterations >= options.max_iterations {
            return Ok(report(p, iterations, f));
        }
        iterations += 1;
        let newton = newton_direction(wp, model, &logs, &g)
            .and_then(|v| m.exp(&p, &(model.from_frame)(&p, &v)).ok())
            .map(|candidate| (variance(m, wp, &candidate), candidate));
        if let Some((fc, candidate)) = newton
            && no_worse(fc, f)
        {
            p = candidate;
            f = fc;
            continue;
        }
        loop {
            let candidate = m.exp(&p, &(model.from_frame)(&p, &scaled(&g, step)))?;
            let fc = variance(m, wp, &candidate);
            if no_worse(fc, f) {
                p = candidate;
                f = fc;
                step = (step * 2.0).min(1.0);
                break;
            }
            step *= 0.5;
            if step < 1e-12 {
                // No step, however short, lowers the objective: `p` is as
                // close as the arithmetic gets; `converged` says whether
                // that meets the tolerance.
                return Ok(report(p, iterations, f));
            }
        }
    }
}
