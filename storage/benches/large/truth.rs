//! The exact `k` nearest base points of every query, computed once per data
//! set on every core: the reference each library's recall is measured
//! against. Computed here rather than with HVS's own exact scan, so the
//! reference does not depend on the code under test.

use std::ops::Range;

use crate::data::Flat;

/// The `k` smallest distances seen so far, nearest first.
struct Nearest {
    k: usize,
    best: Vec<(f64, u32)>,
}

impl Nearest {
    fn new(k: usize) -> Self {
        Self {
            k,
            best: Vec::with_capacity(k + 1),
        }
    }

    fn offer(&mut self, d: f64, i: usize) {
        if self.best.len() == self.k && d >= self.best[self.k - 1].0 {
            return;
        }
        let at = self.best.partition_point(|(e, _)| *e <= d);
        self.best.insert(at, (d, i as u32));
        self.best.truncate(self.k);
    }

    fn ids(self) -> Vec<u32> {
        self.best.into_iter().map(|(_, i)| i).collect()
    }
}

/// `work` over `0..count` split into one contiguous range per core, the
/// results in order.
fn on_all_cores<T: Send>(count: usize, work: impl Fn(Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = count.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .step_by(per)
            .map(|start| {
                let work = &work;
                s.spawn(move || work(start..(start + per).min(count)))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a truth thread panicked"))
            .collect()
    })
}

/// Squared Euclidean distance of two `f32` points, summed in `f64` in eight
/// independent lanes (so the compiler can vectorise it).
fn squared_l2(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            let d = f64::from(x[j]) - f64::from(y[j]);
            acc[j] += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Queries compared with each base point while it is in cache: the base set
/// streams from memory once per block instead of once per query.
const QUERY_BLOCK: usize = 16;

/// The indices of the `k` base points nearest to each query, by Euclidean
/// distance.
pub(crate) fn euclidean(base: &Flat, queries: &Flat, k: usize) -> Vec<Vec<u32>> {
    on_all_cores(queries.len(), |range| {
        let mut out = Vec::with_capacity(range.len());
        for start in range.clone().step_by(QUERY_BLOCK) {
            let block = start..(start + QUERY_BLOCK).min(range.end);
            let mut near: Vec<Nearest> = block.clone().map(|_| Nearest::new(k)).collect();
            for i in 0..base.len() {
                let b = base.row(i);
                for (q, n) in block.clone().zip(&mut near) {
                    n.offer(squared_l2(b, queries.row(q)), i);
                }
            }
            out.extend(near.into_iter().map(Nearest::ids));
        }
        out
    })
}

/// The indices of the `k` of `n` base points nearest to each of `queries`
/// queries, by `distance(query, base)`.
pub(crate) fn by_distance(
    n: usize,
    queries: usize,
    k: usize,
    distance: impl Fn(usize, usize) -> f64 + Sync,
) -> Vec<Vec<u32>> {
    on_all_cores(queries, |range| {
        range
            .map(|q| {
                let mut near = Nearest::new(k);
                for i in 0..n {
                    near.offer(distance(q, i), i);
                }
                near.ids()
            })
            .collect()
    })
}

/// `cosh` of the hyperbolic distance between two hyperboloid points,
/// `x0 y0 - <x_s, y_s>`, in plain `f64`: it orders points as the distance
/// does, to about 1e-16 of `x0 y0` — enough to pick candidates near the
/// origin (where `x0 < 1e5`), never the final order.
pub(crate) fn lorentz_cosh(x: &[f64], y: &[f64]) -> f64 {
    x[0] * y[0] - x[1..].iter().zip(&y[1..]).map(|(a, b)| a * b).sum::<f64>()
}

/// Candidates a cheap ordering keeps for each query, of which the exact
/// distance picks the `k` nearest: far more than rounding can reorder.
pub(crate) const CANDIDATES: usize = 40;

/// The `k` of each query's `candidates` nearest by `distance(query, base)`.
pub(crate) fn rerank(
    candidates: &[Vec<u32>],
    k: usize,
    distance: impl Fn(usize, usize) -> f64 + Sync,
) -> Vec<Vec<u32>> {
    on_all_cores(candidates.len(), |range| {
        range
            .map(|q| {
                let mut near = Nearest::new(k);
                for &i in &candidates[q] {
                    near.offer(distance(q, i as usize), i as usize);
                }
                near.ids()
            })
            .collect()
    })
}

/// The mean share of each query's true `k` nearest that `found(q)` holds.
pub(crate) fn recall(truth: &[Vec<u32>], found: &[Vec<u32>]) -> f64 {
    let mut hit = 0usize;
    let mut wanted = 0usize;
    for (t, f) in truth.iter().zip(found) {
        wanted += t.len();
        hit += t.iter().filter(|i| f.contains(i)).count();
    }
    hit as f64 / wanted.max(1) as f64
}
