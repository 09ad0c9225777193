//! How faithfully [`transform`](crate::transform) carries nearest neighbours
//! from one manifold to another: the measurement behind the table in
//! `docs/GEOMETRY.md` ("Carrying points between manifolds"), run by
//! `cargo run --release -p hvs-geometry --example transfer_distortion` and
//! asserted by `geometry/tests/transform_distortion.rs`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::any::AnyManifold;
use crate::error::Result;
use crate::manifold::Manifold;
use crate::numeric::{norm, scaled, standard_normal};
use crate::transform::transform;

/// The data a measurement draws: `points` points and `queries` queries of
/// the source manifold, `exp0(v)` of tangent vectors `v` with a uniform
/// direction and a length uniform in `[0, max_radius]` (so the distance
/// from the origin is uniform on a Riemannian manifold), from the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferSample {
    /// Points searched.
    pub points: usize,
    /// Queries, drawn like the points but apart from them.
    pub queries: usize,
    /// Neighbours compared per query.
    pub k: usize,
    /// Candidates fetched in the target per neighbour wanted, for
    /// [`TransferDistortion::recall_overfetched`] (the `k · overfetch`
    /// nearest in the target, re-ranked by source distance).
    pub overfetch: usize,
    /// Largest tangent length (distance from the origin) drawn.
    pub max_radius: f64,
    /// Seed of the generator; the same seed draws the same data.
    pub seed: u64,
}

impl Default for TransferSample {
    /// 2,000 points, 300 queries, k = 10, overfetch 5, radius ≤ 1, seed 13.
    fn default() -> Self {
        Self {
            points: 2_000,
            queries: 300,
            k: 10,
            overfetch: 5,
            max_radius: 1.0,
            seed: 13,
        }
    }
}

/// What a transform kept of a sample.
///
/// Ground truth is the exact k nearest points of each query in the source
/// manifold (by `distance_unchecked`, what the storage index ranks by);
/// the answer is the exact k nearest of the carried query among the carried
/// points in the target. Pair statistics are over every (carried query,
/// carried point) pair with a non-zero source distance.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferDistortion {
    /// Mean over carried queries of |true ∩ found| / k; a point the transform
    /// refused counts as a miss. 0 when nothing was carried.
    pub recall: f64,
    /// The same with the `k · overfetch` nearest in the target as
    /// candidates: the recall of a search that fetches that many, carries
    /// them back and keeps the `k` nearest by source distance (the
    /// transforms round-trip, so that re-ranking is exact).
    pub recall_overfetched: f64,
    /// Spearman rank correlation of the target distances with the source
    /// distances over the pairs (ties get their mean rank); 0 when either
    /// side is constant or there are no pairs.
    pub spearman: f64,
    /// 1st percentile of `d_to / d_from` over the pairs.
    pub ratio_low: f64,
    /// Median of `d_to / d_from`.
    pub ratio_median: f64,
    /// 99th percentile of `d_to / d_from`.
    pub ratio_high: f64,
    /// Points `transform` refused (they cannot be found in the target).
    pub refused_points: usize,
    /// Queries `transform` refused (left out of every statistic).
    pub refused_queries: usize,
}

/// Draws `sample` in `from`, carries it to `to` with [`transform`], and
/// compares exact k-NN and distances on both sides.
///
/// Errors: a point `exp0` cannot make in `from` (a non-finite or too large
/// `max_radius`), and manifolds of different intrinsic dimension
/// (`IncompatibleManifolds`). Points and queries `transform` refuses are
/// counted, not errors.
pub fn measure_transfer(
    from: &AnyManifold,
    to: &AnyManifold,
    sample: &TransferSample,
) -> Result<TransferDistortion> {
    // Checks the dimensions (and the pair) once, on the origin.
    transform(&from.origin(), from, to)?;
    let mut rng = StdRng::seed_from_u64(sample.seed);
    let points = draw(from, sample.points, sample.max_radius, &mut rng)?;
    let queries = draw(from, sample.queries, sample.max_radius, &mut rng)?;
    let carried: Vec<Option<Vec<f64>>> = points.iter().map(|p| carry(p, from, to)).collect();
    let target: Vec<(usize, &[f64])> = carried
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_deref().map(|p| (i, p)))
        .collect();
    let k = sample.k.min(points.len());
    let mut tally = Tally::default();
    for q in &queries {
        let Some(tq) = carry(q, from, to) else {
            tally.refused_queries += 1;
            continue;
        };
        let d_from: Vec<f64> = points
            .iter()
            .map(|p| from.distance_unchecked(q, p))
            .collect();
        let d_to: Vec<f64> = target
            .iter()
            .map(|(_, p)| to.distance_unchecked(&tq, p))
            .collect();
        let truth = nearest(d_from.iter().copied().enumerate(), k);
        let ranked = || target.iter().map(|(i, _)| *i).zip(d_to.iter().copied());
        let found = nearest(ranked(), k);
        let candidates = nearest(ranked(), k.saturating_mul(sample.overfetch.max(1)));
        tally.add_query(&truth, &found, &candidates, k);
        for ((i, _), dt) in target.iter().zip(&d_to) {
            tally.add_pair(d_from[*i], *dt);
        }
    }
    Ok(tally.finish(carried.iter().filter(|p| p.is_none()).count()))
}

/// `n` points `exp0(v)`, `v` of uniform direction and length uniform in
/// `[0, max_radius]`.
fn draw(m: &AnyManifold, n: usize, max_radius: f64, rng: &mut StdRng) -> Result<Vec<Vec<f64>>> {
    (0..n)
        .map(|_| {
            let g = standard_normal(rng, m.dim());
            let len = norm(&g);
            let r = max_radius.abs() * rng.random::<f64>();
            let v = if len > 0.0 { scaled(&g, r / len) } else { g };
            m.exp0(&v)
        })
        .collect()
}

fn carry(p: &[f64], from: &AnyManifold, to: &AnyManifold) -> Option<Vec<f64>> {
    transform(p, from, to).ok()
}

/// Indices of the `k` smallest distances (ties broken by index).
fn nearest(d: impl Iterator<Item = (usize, f64)>, k: usize) -> Vec<usize> {
    let mut all: Vec<(usize, f64)> = d.collect();
    let by = |a: &(usize, f64), b: &(usize, f64)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    if k == 0 {
        return Vec::new();
    }
    if all.len() > k {
        all.select_nth_unstable_by(k - 1, by);
        all.truncate(k);
    }
    all.into_iter().map(|(i, _)| i).collect()
}

#[derive(Default)]
struct Tally {
    recall_sum: f64,
    overfetched_sum: f64,
    queries: usize,
    refused_queries: usize,
    d_from: Vec<f64>,
    d_to: Vec<f64>,
}

impl Tally {
    fn add_query(&mut self, truth: &[usize], found: &[usize], candidates: &[usize], k: usize) {
        if k > 0 {
            let hits = |among: &[usize]| truth.iter().filter(|i| among.contains(i)).count();
            self.recall_sum += hits(found) as f64 / k as f64;
            self.overfetched_sum += hits(candidates) as f64 / k as f64;
        }
        self.queries += 1;
    }

    fn add_pair(&mut self, d_from: f64, d_to: f64) {
        if d_from > 0.0 && d_from.is_finite() && d_to.is_finite() {
            self.d_from.push(d_from);
            self.d_to.push(d_to);
        }
    }

    fn finish(self, refused_points: usize) -> TransferDistortion {
        let mut ratios: Vec<f64> = self
            .d_to
            .iter()
            .zip(&self.d_from)
            .map(|(t, f)| t / f)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let per_query = |sum: f64| {
            if self.queries == 0 {
                0.0
            } else {
                sum / self.queries as f64
            }
        };
        TransferDistortion {
            recall: per_query(self.recall_sum),
            recall_overfetched: per_query(self.overfetched_sum),
            spearman: spearman(&self.d_from, &self.d_to),
            ratio_low: quantile(&ratios, 0.01),
            ratio_median: quantile(&ratios, 0.5),
            ratio_high: quantile(&ratios, 0.99),
            refused_points,
            refused_queries: self.refused_queries,
        }
    }
}

/// The `q`-quantile of sorted values (nearest rank); 0 for no values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Spearman's ρ: Pearson correlation of the ranks.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Ranks from 0, tied values sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let mean = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            r[i] = mean;
        }
        start = end;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if a.is_empty() {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa > 0.0 && sbb > 0.0 {
        sab / (saa * sbb).sqrt()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties_and_spearman_sees_monotone_maps() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![2.5, 0.0, 2.5, 1.0]);
        let a = [0.1, 0.5, 0.2, 0.9, 0.3];
        let b: Vec<f64> = a.iter().map(|x: &f64| x.exp() * 7.0).collect();
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-15);
        let c: Vec<f64> = a.iter().map(|x| -x).collect();
        assert!((spearman(&a, &c) + 1.0).abs() < 1e-15);
        assert_eq!(spearman(&a, &[1.0; 5]), 0.0);
    }

    #[test]
    fn nearest_takes_the_k_smallest() {
        let d = [5.0, 1.0, 4.0, 0.5, 3.0];
        let mut n = nearest(d.iter().copied().enumerate(), 2);
        n.sort_unstable();
        assert_eq!(n, vec![1, 3]);
        assert!(nearest(d.iter().copied().enumerate(), 0).is_empty());
        assert_eq!(nearest(d.iter().copied().enumerate(), 9).len(), 5);
    }
}
