//! The sphere `S^n` of curvature `c`.

use rand::RngCore;

use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    CHECK_TOLERANCE, check_coords, check_curvature, check_dim, dist_sq, dot, finite_result,
    inv_sinc, lin2, nan_to_inf, norm, norm_scaled, scaled, standard_normal, tangent_residual,
};

/// The round sphere `{x ∈ R^{n+1} : |x| = R}`, `R = 1/√c`, curvature `c`.
///
/// Distance `R · 2 atan2(|x - y|, |x + y|)`: accurate for nearby and for
/// nearly antipodal points alike. `log` and parallel transport are refused
/// with [`GeometryError::NoGeodesic`] for antipodal points (every meridian
/// joins them); the Fréchet mean is refused with
/// [`GeometryError::NoUniqueMean`] unless all points lie within a quarter
/// great circle (`π R / 2`) of it — the condition (Afsari 2011) under which it
/// is unique.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sphere {
    dim: usize,
    c: f64,
}

impl Sphere {
    /// `S^n` (points have `n + 1` coordinates) of curvature `c > 0`.
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

    /// The radius `1/√c`.
    pub fn radius(&self) -> f64 {
        1.0 / self.c.sqrt()
    }

    fn antipodal(&self, x: &[f64], y: &[f64]) -> bool {
        let sum2: f64 = x.iter().zip(y).map(|(a, b)| (a + b).powi(2)).sum();
        sum2.sqrt() < 1e-10 * self.radius()
    }

    /// The two points farthest apart (exactly, O(n^2) for up to 64 points;
    /// for more, the farthest from the first point and the farthest from it).
    fn farthest_pair<'a>(&self, points: &[&'a [f64]]) -> (&'a [f64], &'a [f64]) {
        let farthest_from = |x: &'a [f64]| -> &'a [f64] {
            points
                .iter()
                .copied()
                .max_by(|a, b| {
                    self.distance_unchecked(x, a)
                        .total_cmp(&self.distance_unchecked(x, b))
                })
                .unwrap_or(x)
        };
        if points.len() <= 64 {
            let mut best = (points[0], points[0], 0.0);
            for (i, a) in points.iter().enumerate() {
                for b in &points[i + 1..] {
                    let d = self.distance_unchecked(a, b);
                    if d > best.2 {
                        best = (a, b, d);
                    }
                }
            }
            return (best.0, best.1);
        }
        let a = farthest_from(points[0]);
        (a, farthest_from(a))
    }

    const NO_GEODESIC: GeometryError = GeometryError::NoGeodesic {
        manifold: "sphere",
        reason: "the points are antipodal: every great half-circle joins them",
    };
}

impl Manifold for Sphere {
    fn name(&self) -> &'static str {
        "sphere"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ambient_dim(&self) -> usize {
        self.dim + 1
    }

    fn check(&self, x: &[f64]) -> Result<()> {
        check_coords(x, self.dim + 1)?;
        let r = self.radius();
        let residual = (norm(x) - r).abs() / r;
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "|x| = 1/√c",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        let residual = tangent_residual(dot(x, v), x, v);
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::NotTangent {
                manifold: self.name(),
                constraint: "<x,v> = 0",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    /// `R x / |x|`, the nearest point; the zero vector (to which every point
    /// is nearest) goes to the origin.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_coords(x, self.dim + 1)?;
        let n = norm(x);
        if n == 0.0 {
            return Ok(self.origin());
        }
        // Points already on the sphere to rounding stay bit-for-bit as they
        // are, so that `project` is idempotent.
        if (n - self.radius()).abs() <= 4.0 * f64::EPSILON * self.radius() {
            return Ok(x.to_vec());
        }
        finite_result(scaled(x, self.radius() / n), "project")
    }

    /// `v - <x,v> x / R^2`.
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        finite_result(lin2(1.0, v, -dot(x, v) * self.c, x), "project_tangent")
    }

    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        let diff = dist_sq(x, y).sqrt();
        let sum: f64 = x
            .iter()
            .zip(y)
            .map(|(a, b)| (a + b).powi(2))
            .sum::<f64>()
            .sqrt();
        nan_to_inf(2.0 * self.radius() * diff.atan2(sum))
    }

    /// `cos(|v|/R) x + R sin(|v|/R) v / |v|`, renormalised onto the sphere.
    /// Any finite `v` works: `|v|` is computed without overflow and the
    /// angle is reduced modulo 2π by the platform's `sin`/`cos` (exactly, for
    /// arguments as large as 1e300).
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let vn = norm_scaled(v);
        if vn == 0.0 {
            return Ok(x.to_vec());
        }
        let r = self.radius();
        let theta = vn / r;
        let dir: Vec<f64> = v.iter().map(|a| a / vn).collect();
        self.project(&lin2(theta.cos(), x, r * theta.sin(), &dir))
    }

    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        if self.antipodal(x, y) {
            return Err(Self::NO_GEODESIC);
        }
        let theta = self.distance_unchecked(x, y) / self.radius();
        let u = lin2(1.0, y, -dot(x, y) * self.c, x);
        finite_result(scaled(&u, inv_sinc(theta)), "log")
    }

    fn origin(&self) -> Vec<f64> {
        let mut o = vec![0.0; self.dim + 1];
        o[0] = self.radius();
        o
    }

    /// Uniform on the sphere (a normalised Gaussian vector).
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        loop {
            let g = standard_normal(rng, self.dim + 1);
            let n = norm(&g);
            if n > 1e-12 {
                return scaled(&g, self.radius() / n);
            }
        }
    }

    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, u)?;
        self.check_tangent(x, v)?;
        Ok(dot(u, v))
    }

    /// `v - <y,v> / (R^2 + <x,y>) · (x + y)`, with `R^2 + <x,y> = |x + y|^2 / 2`.
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        self.check(y)?;
        if self.antipodal(x, y) {
            return Err(Self::NO_GEODESIC);
        }
        let half_sum2: f64 = 0.5 * x.iter().zip(y).map(|(a, b)| (a + b).powi(2)).sum::<f64>();
        let k = dot(y, v) / half_sum2;
        finite_result(
            v.iter()
                .zip(x.iter().zip(y))
                .map(|(vi, (xi, yi))| vi - k * (xi + yi))
                .collect(),
            "parallel_transport",
        )
    }

    /// Tangent space at the origin `(R, 0, …)` is `{(0, v)}`:
    /// `exp0(v) = (R cos(|v|/R), R sin(|v|/R) v/|v|)`.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim)?;
        let r = self.radius();
        let vn = norm_scaled(v);
        if vn == 0.0 {
            return Ok(self.origin());
        }
        let theta = vn / r;
        let mut x = Vec::with_capacity(self.dim + 1);
        x.push(r * theta.cos());
        let s = r * theta.sin() / vn;
        x.extend(v.iter().map(|a| a * s));
        self.project(&x)
    }

    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        let xs = &x[1..];
        let n = norm(xs);
        if n == 0.0 {
            return if x[0] > 0.0 {
                Ok(vec![0.0; self.dim])
            } else {
                Err(Self::NO_GEODESIC)
            };
        }
        let theta = n.atan2(x[0]);
        Ok(scaled(xs, self.radius() * theta / n))
    }

    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        let wp = mean::prepare(self, points, weights)?;
        let s = mean::weighted_sum(&wp, self.dim + 1);
        if norm(&s) <= 1e-9 * self.radius() {
            return Err(GeometryError::NoUniqueMean {
                manifold: self.name(),
                reason: "the points balance around the sphere's centre (e.g. antipodal pairs), \
                         so every point of a great circle or more is a mean"
                    .into(),
            });
        }
        let start = self.project(&s)?;
        // Ambient coordinates, whose dot product is the metric; the Newton
        // step is projected back on the tangent space.
        let to_frame = |_: &[f64], u: &[f64]| u.to_vec();
        let from_frame = |p: &[f64], v: &[f64]| lin2(1.0, v, -dot(p, v) * self.c, p);
        let resolution = |_: &[f64]| f64::EPSILON * self.radius();
        let model = mean::CurvatureModel {
            curvature: self.c,
            to_frame: &to_frame,
            from_frame: &from_frame,
            resolution: &resolution,
        };
        // Antipodal points (with any weights) have a whole circle of means:
        // the flow meets them as a `log` with no unique geodesic.
        let result = match mean::karcher_flow(self, &wp, start, &model, options) {
            Err(GeometryError::NoGeodesic { .. }) => {
                return Err(GeometryError::NoUniqueMean {
                    manifold: self.name(),
                    reason: "two of the points are antipodal, so a whole circle of points \
                             are means"
                        .into(),
                });
            }
            other => other?,
        };
        // Uniqueness holds when all points lie in an open ball of radius
        // π R / 2 (Afsari 2011). Try two centres: the mean itself, and the
        // midpoint of the two points farthest apart from it (which settles
        // the two-point case).
        let quarter = std::f64::consts::FRAC_PI_2 * self.radius();
        let reach = |c: &[f64]| {
            wp.points
                .iter()
                .map(|p| self.distance_unchecked(c, p))
                .fold(0.0, f64::max)
        };
        let far = reach(&result.mean);
        if far >= quarter {
            let (a, b) = self.farthest_pair(&wp.points);
            let centred = self.geodesic(a, b, 0.5).map(|mid| reach(&mid) < quarter);
            if centred != Ok(true) {
                return Err(GeometryError::NoUniqueMean {
                    manifold: self.name(),
                    reason: format!(
                        "a point lies {far:.6} from the candidate mean, and the points do not \
                         fit in a ball of radius {quarter:.6} (a quarter great circle), so the \
                         mean may not be unique"
                    ),
                });
            }
        }
        Ok(result)
    }
}
