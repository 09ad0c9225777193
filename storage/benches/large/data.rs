//! The large bench's data sets, each from a fixed seed (the same numbers on
//! every run and machine): uniform and clustered Euclidean sets, the H^12
//! taxonomy and spread sets, and a deep, unbalanced tree embedded in H^12
//! twice (rooted at the origin, and moved far from it by an isometry).

use hvs_geometry::{Hyperboloid, Manifold};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Points of `dim` coordinates stored one after another as `f32`. Every
/// library gets exactly these values (HVS as the `f64` of each `f32`), so the
/// f32 graphs of hnswlib and hnsw_rs lose nothing in conversion.
pub(crate) struct Flat {
    pub(crate) dim: usize,
    pub(crate) data: Vec<f32>,
}

impl Flat {
    pub(crate) fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub(crate) fn point(&self, i: usize) -> Vec<f64> {
        self.row(i).iter().map(|a| f64::from(*a)).collect()
    }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn unit(v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    v.into_iter().map(|x| x / n).collect()
}

/// `n` base points and `nq` queries uniform in `[-1, 1]^dim`: full intrinsic
/// dimension, the worst case for every graph index.
pub(crate) fn uniform(seed: u64, n: usize, nq: usize, dim: usize) -> (Flat, Flat) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |count: usize| Flat {
        dim,
        data: (0..count * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect(),
    };
    let base = draw(n);
    (base, draw(nq))
}

/// Clusters in [`clustered`].
pub(crate) const CLUSTERS: usize = 1_000;
/// The dimensions of a cluster's own subspace are drawn from this range.
pub(crate) const SUBSPACE_DIMS: std::ops::RangeInclusive<usize> = 8..=16;

/// One Gaussian of the mixture: a centre, an orthonormal basis of its own
/// subspace, and the spread along each basis vector.
struct Cluster {
    centre: Vec<f64>,
    basis: Vec<Vec<f64>>,
    spread: Vec<f64>,
}

impl Cluster {
    fn new(rng: &mut StdRng, dim: usize) -> Self {
        // Centres ~ N(0, I/dim): norm about 1, about 1.4 apart, so the
        // clusters (spread about 0.6 across) touch and partly overlap.
        let centre = (0..dim)
            .map(|_| normal(rng) / (dim as f64).sqrt())
            .collect();
        let sub = rng.random_range(SUBSPACE_DIMS);
        let mut basis: Vec<Vec<f64>> = Vec::with_capacity(sub);
        while basis.len() < sub {
            // Gram–Schmidt on Gaussian vectors: a uniformly random subspace.
            let mut v: Vec<f64> = (0..dim).map(|_| normal(rng)).collect();
            for b in &basis {
                let along: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(b).for_each(|(x, y)| *x -= along * y);
            }
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if n > 1e-6 {
                basis.push(v.into_iter().map(|x| x / n).collect());
            }
        }
        // The same spread along every direction of the subspace: with a
        // decaying spectrum the local dimension fell to about 6 (see
        // `clustered`), below real embeddings'.
        let spread = vec![0.3; sub];
        Self {
            centre,
            basis,
            spread,
        }
    }

    fn sample(&self, rng: &mut StdRng, noise: f64, out: &mut Vec<f32>) {
        let mut p = self.centre.clone();
        for (b, s) in self.basis.iter().zip(&self.spread) {
            let z = s * normal(rng);
            p.iter_mut().zip(b).for_each(|(x, y)| *x += z * y);
        }
        out.extend(p.into_iter().map(|x| (x + noise * normal(rng)) as f32));
    }
}

/// `n` base points and `nq` queries from one mixture of [`CLUSTERS`]
/// Gaussians in R^dim, each living in its own random subspace of
/// [`SUBSPACE_DIMS`] dimensions, with cluster sizes drawn log-normally (a few
/// large clusters, many small ones) and isotropic noise of total norm about
/// 0.1 on top. Queries are fresh draws from the same mixture, not base
/// points. The local intrinsic dimension (Levina–Bickel estimate over each
/// query's nearest base points) is about 9 over 20 neighbours and 16 over
/// 100 at 20,000 points of 128-d, 10 and 8 at 200,000, 10 and 18 at 20,000
/// of 512-d (uniform 128-d data measures 50–70): the order of the
/// subspaces' dimension, as the mixture intends.
pub(crate) fn clustered(seed: u64, n: usize, nq: usize, dim: usize) -> (Flat, Flat) {
    let mut rng = StdRng::seed_from_u64(seed);
    let clusters: Vec<Cluster> = (0..CLUSTERS).map(|_| Cluster::new(&mut rng, dim)).collect();
    let mut cumulative = Vec::with_capacity(CLUSTERS);
    let mut total = 0.0;
    for _ in 0..CLUSTERS {
        total += normal(&mut rng).exp();
        cumulative.push(total);
    }
    let noise = 0.1 / (dim as f64).sqrt();
    let mut draw = |count: usize| {
        let mut data = Vec::with_capacity(count * dim);
        for _ in 0..count {
            let pick = rng.random_range(0.0..total);
            let c = cumulative.partition_point(|w| *w <= pick).min(CLUSTERS - 1);
            clusters[c].sample(&mut rng, noise, &mut data);
        }
        Flat { dim, data }
    };
    let base = draw(n);
    (base, draw(nq))
}

pub(crate) fn h12() -> Hyperboloid {
    Hyperboloid::new(12, 1.0).expect("H^12 of curvature 1 exists")
}

/// A point `len` from `p` in a random direction.
pub(crate) fn jitter(h: &Hyperboloid, rng: &mut StdRng, p: &[f64], len: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..13).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = h.project_tangent(p, &w).unwrap();
    let n = h.norm(p, &t).unwrap().max(1e-12);
    h.exp(p, &t.iter().map(|a| a * len / n).collect::<Vec<_>>())
        .unwrap()
}

/// A tree of branching 8 embedded in H^12: children 1–1.6 from their
/// parent in random directions.
pub(crate) fn taxonomy(rng: &mut StdRng, n: usize) -> Vec<Vec<f64>> {
    let h = h12();
    let mut level = vec![h.origin()];
    let mut all = level.clone();
    while all.len() < n {
        let mut next = Vec::new();
        for p in &level {
            for _ in 0..8 {
                let len = rng.random_range(1.0..1.6);
                next.push(jitter(&h, rng, p, len));
            }
        }
        all.extend(next.iter().cloned());
        level = next;
    }
    all.truncate(n);
    all
}

/// The deep tree's depth (levels below the root).
pub(crate) const DEEP_LEVELS: usize = 20;
/// How much further from the origin each level sits.
const LEVEL_STEP: f64 = 0.5;
/// The Pareto tail of the fan-out: a parent's share of the next level is
/// proportional to `U^(-1/1.5)`, so most parents have a few children or none
/// and a few have hundreds.
const FANOUT_TAIL: f64 = 1.5;

/// A deep, unbalanced hierarchy in H^12 and queries from its own
/// distribution.
pub(crate) struct DeepTree {
    /// Every node's point, the root first, level by level.
    pub(crate) points: Vec<Vec<f64>>,
    /// New leaves: each hangs under a random node, placed as a child is.
    pub(crate) queries: Vec<Vec<f64>>,
    /// The most children one parent has.
    pub(crate) max_fanout: usize,
    /// Parents with 100 children or more.
    pub(crate) parents_over_100: usize,
}

/// The ratio `m` with `1 + m + m^2 + … + m^levels = n`.
fn growth(n: usize, levels: usize) -> f64 {
    let total = |m: f64| (0..=levels).map(|d| m.powi(d as i32)).sum::<f64>();
    let (mut lo, mut hi) = (1.0f64, n as f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if total(mid) < n as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `n` nodes in [`DEEP_LEVELS`] levels below a root at the origin, level
/// sizes growing geometrically, each level's nodes shared among the parents
/// of the level above in proportion to heavy-tailed weights
/// ([`FANOUT_TAIL`]). Placed in polar form as in `tests/deep_tree.rs`: a
/// child sits [`LEVEL_STEP`] (±0.1) further out than its parent, in the
/// parent's direction bent by an angle that shrinks as e^-r, so siblings
/// stay a few units apart at every depth.
pub(crate) fn deep_tree(seed: u64, n: usize, nq: usize) -> DeepTree {
    let h = h12();
    let mut rng = StdRng::seed_from_u64(seed);
    let m = growth(n, DEEP_LEVELS);
    let mut sizes: Vec<usize> = (0..DEEP_LEVELS)
        .map(|d| (m.powi(d as i32).round() as usize).max(1))
        .collect();
    sizes.push(n.saturating_sub(sizes.iter().sum()).max(1));

    // Polar form (radius, direction) of every node; the root's direction is
    // never used (its children take random ones).
    let mut polar: Vec<(f64, Vec<f64>)> = vec![(0.0, unit(vec![1.0; 12]))];
    let mut level_start = 0;
    let (mut max_fanout, mut parents_over_100) = (0, 0);
    for &size in &sizes[1..] {
        let parents = level_start..polar.len();
        let mut cumulative = Vec::with_capacity(parents.len());
        let mut total = 0.0;
        for _ in parents.clone() {
            total += (1.0 - rng.random::<f64>()).powf(-1.0 / FANOUT_TAIL);
            cumulative.push(total);
        }
        let mut children = vec![0usize; parents.len()];
        for _ in 0..size {
            let pick = rng.random_range(0.0..total);
            children[cumulative
                .partition_point(|w| *w <= pick)
                .min(parents.len() - 1)] += 1;
        }
        max_fanout = max_fanout.max(*children.iter().max().unwrap_or(&0));
        parents_over_100 += children.iter().filter(|c| **c >= 100).count();
        let next_start = polar.len();
        for (p, count) in parents.zip(children) {
            for _ in 0..count {
                let child = place_child(&mut rng, &polar[p]);
                polar.push(child);
            }
        }
        level_start = next_start;
    }
    let queries = (0..nq)
        .map(|_| {
            let parent = &polar[rng.random_range(0..polar.len())];
            to_point(&h, &place_child(&mut rng, parent))
        })
        .collect();
    DeepTree {
        points: polar.iter().map(|p| to_point(&h, p)).collect(),
        queries,
        max_fanout,
        parents_over_100,
    }
}

fn place_child(rng: &mut StdRng, (r, d): &(f64, Vec<f64>)) -> (f64, Vec<f64>) {
    let child_r = r + LEVEL_STEP + rng.random_range(-0.1..0.1);
    let bend = 2.0 * (-r).exp();
    let dir = if *r == 0.0 {
        unit((0..12).map(|_| normal(rng)).collect())
    } else {
        unit(
            d.iter()
                .map(|x| x + bend * rng.random_range(-1.0..1.0))
                .collect(),
        )
    };
    (child_r, dir)
}

fn to_point(h: &Hyperboloid, (r, d): &(f64, Vec<f64>)) -> Vec<f64> {
    h.exp0(&d.iter().map(|x| x * r).collect::<Vec<_>>())
        .unwrap()
}

/// The same points moved by the hyperbolic translation that takes the
/// origin `distance` out along a fixed direction: an isometry, so every
/// point keeps its neighbours and their distances, while most points end up
/// about `distance` further from the origin (in 12 dimensions almost every
/// direction is nearly perpendicular to the move). Computed as
/// `exp_b(transport_{o→b}(log_o p))` with the geometry crate's far-out
/// arithmetic.
pub(crate) fn move_out(points: &[Vec<f64>], distance: f64) -> Vec<Vec<f64>> {
    let h = h12();
    let o = h.origin();
    let mut along = vec![0.0; 12];
    along[0] = distance;
    let b = h.exp0(&along).unwrap();
    points
        .iter()
        .map(|p| {
            let v = h.log(&o, p).unwrap();
            let w = h.parallel_transport(&o, &b, &v).unwrap();
            h.exp(&b, &w).unwrap()
        })
        .collect()
}

/// The median distance of the points from the origin.
pub(crate) fn median_radius(points: &[Vec<f64>]) -> f64 {
    let h = h12();
    let o = h.origin();
    let mut r: Vec<f64> = points.iter().map(|p| h.distance(&o, p).unwrap()).collect();
    r.sort_by(f64::total_cmp);
    r[r.len() / 2]
}
