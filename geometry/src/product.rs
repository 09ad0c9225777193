//! Product manifolds `M_1 × … × M_k` with component weights.

use rand::RngCore;

use crate::any::AnyManifold;
use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{FrechetMean, FrechetOptions};
use crate::numeric::check_coords;

/// A product of manifolds with the weighted metric `Σ w_i g_i`.
///
/// A point is the concatenation of its components' ambient coordinates, in
/// order. `d(x, y) = sqrt(Σ w_i d_i(x_i, y_i)^2)`; `exp`, `log`, projection
/// and parallel transport act component by component (scaling a metric by a
/// constant does not change its geodesics); the inner product is
/// `Σ w_i <u_i, v_i>_i`. The Fréchet mean separates into the components'
/// means, because the objective is a weighted sum of the components'
/// objectives. Errors about a component's coordinates (dimension, index)
/// are reported in that component's own coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    components: Vec<(AnyManifold, f64)>,
    /// Start of each component's ambient coordinates, plus the total at the end.
    offsets: Vec<usize>,
    /// Start of each component's intrinsic coordinates, plus the total.
    intrinsic: Vec<usize>,
}

impl Product {
    /// A product of `(manifold, weight)` pairs; weights must be finite and > 0.
    pub fn new(components: Vec<(AnyManifold, f64)>) -> Result<Self> {
        if components.is_empty() {
            return Err(GeometryError::InvalidProduct {
                reason: "no components".into(),
            });
        }
        let mut offsets = vec![0];
        let mut intrinsic = vec![0];
        for (i, (m, w)) in components.iter().enumerate() {
            if !(w.is_finite() && *w > 0.0) {
                return Err(GeometryError::InvalidProduct {
                    reason: format!("component {i} has weight {w}; weights must be finite and > 0"),
                });
            }
            offsets.push(offsets[i] + m.ambient_dim());
            intrinsic.push(intrinsic[i] + m.dim());
        }
        Ok(Self {
            components,
            offsets,
            intrinsic,
        })
    }

    /// The components and their weights.
    pub fn components(&self) -> &[(AnyManifold, f64)] {
        &self.components
    }

    /// The slices of `x` that belong to each component (`x` must have
    /// [`ambient_dim`](Manifold::ambient_dim) coordinates).
    pub fn split<'a>(&self, x: &'a [f64]) -> Result<Vec<&'a [f64]>> {
        check_coords(x, self.ambient_dim())?;
        Ok(self.split_unchecked(x, &self.offsets))
    }

    fn split_unchecked<'a>(&self, x: &'a [f64], offsets: &[usize]) -> Vec<&'a [f64]> {
        offsets
            .windows(2)
            .map(|w| x.get(w[0]..w[1]).unwrap_or(&[]))
            .collect()
    }

    /// Applies `f` to each component and its slices of `xs` (ambient
    /// coordinates), concatenating the results.
    fn map_components(
        &self,
        xs: &[&[f64]],
        f: impl Fn(&AnyManifold, f64, &[&[f64]]) -> Result<Vec<f64>>,
    ) -> Result<Vec<f64>> {
        for x in xs {
            check_coords(x, self.ambient_dim())?;
        }
        let mut out = Vec::with_capacity(self.ambient_dim());
        for (i, (m, w)) in self.components.iter().enumerate() {
            let parts: Vec<&[f64]> = xs
                .iter()
                .map(|x| &x[self.offsets[i]..self.offsets[i + 1]])
                .collect();
            out.extend(f(m, *w, &parts)?);
        }
        Ok(out)
    }
}

impl Manifold for Product {
    fn name(&self) -> &'static str {
        "product"
    }

    fn dim(&self) -> usize {
        self.intrinsic[self.components.len()]
    }

    fn ambient_dim(&self) -> usize {
        self.offsets[self.components.len()]
    }

    fn check(&self, x: &[f64]) -> Result<()> {
        for ((m, _), p) in self.components.iter().zip(self.split(x)?) {
            m.check(p)?;
        }
        Ok(())
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        let vs = self.split(v)?;
        for (((m, _), p), t) in self.components.iter().zip(self.split(x)?).zip(vs) {
            m.check_tangent(p, t)?;
        }
        Ok(())
    }

    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.map_components(&[x], |m, _, p| m.project(p[0]))
    }

    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.map_components(&[x, v], |m, _, p| m.project_tangent(p[0], p[1]))
    }

    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        let (xs, ys) = (
            self.split_unchecked(x, &self.offsets),
            self.split_unchecked(y, &self.offsets),
        );
        self.components
            .iter()
            .zip(xs.iter().zip(ys))
            .map(|((m, w), (a, b))| w * m.distance_unchecked(a, b).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.map_components(&[x, v], |m, _, p| m.exp(p[0], p[1]))
    }

    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.map_components(&[x, y], |m, _, p| m.log(p[0], p[1]))
    }

    fn origin(&self) -> Vec<f64> {
        self.components
            .iter()
            .flat_map(|(m, _)| m.origin())
            .collect()
    }

    /// Each component's own random point.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        self.components
            .iter()
            .flat_map(|(m, _)| m.random_point(rng))
            .collect()
    }

    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        let (xs, us, vs) = (self.split(x)?, self.split(u)?, self.split(v)?);
        let mut total = 0.0;
        for (i, (m, w)) in self.components.iter().enumerate() {
            total += w * m.inner(xs[i], us[i], vs[i])?;
        }
        Ok(total)
    }

    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.map_components(&[x, y, v], |m, _, p| m.parallel_transport(p[0], p[1], p[2]))
    }

    /// Component `i` receives its slice of `v` divided by `sqrt(w_i)`, so
    /// that the frame is orthonormal for the weighted metric.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim())?;
        let parts = self.split_unchecked(v, &self.intrinsic);
        let mut out = Vec::with_capacity(self.ambient_dim());
        for ((m, w), p) in self.components.iter().zip(parts) {
            let s = 1.0 / w.sqrt();
            out.extend(m.exp0(&p.iter().map(|a| a * s).collect::<Vec<_>>())?);
        }
        Ok(out)
    }

    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.dim());
        for ((m, w), p) in self.components.iter().zip(self.split(x)?) {
            let s = w.sqrt();
            out.extend(m.log0(p)?.into_iter().map(|a| a * s));
        }
        Ok(out)
    }

    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        for p in points {
            self.check(p)?;
        }
        let mut total = FrechetMean {
            mean: Vec::with_capacity(self.ambient_dim()),
            iterations: 0,
            converged: true,
            gradient_norm: 0.0,
            variance: 0.0,
        };
        let mut grad_sq = 0.0;
        for (i, (m, w)) in self.components.iter().enumerate() {
            let parts: Vec<&[f64]> = points
                .iter()
                .map(|x| &x[self.offsets[i]..self.offsets[i + 1]])
                .collect();
            let component_options = FrechetOptions {
                initial: match &options.initial {
                    Some(start) => Some(self.split(start)?[i].to_vec()),
                    None => None,
                },
                ..options.clone()
            };
            let r = m.frechet_mean(&parts, weights, &component_options)?;
            total.mean.extend(r.mean);
            total.iterations = total.iterations.max(r.iterations);
            total.converged &= r.converged;
            grad_sq += w * r.gradient_norm.powi(2);
            total.variance += w * r.variance;
        }
        total.gradient_norm = grad_sq.sqrt();
        Ok(total)
    }
}
