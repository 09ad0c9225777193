//! How many graph nodes stop being found between the index's reachability
//! passes, as later inserts prune their in-links (docs/STORAGE.md,
//! "Findable at every instant").
//!
//! Builds a base of `N` vectors (`flush_index`: a full pass), then adds
//! `STEPS` batches of `STEP` through the background indexer (each new node
//! checked, no full pass until the graph doubles), and after each batch
//! searches every stored vector twice: by its own coordinates (found
//! whatever the graph does) and by a point 1e-5 away from it, which only the
//! graph (or the exact scans of the fresh and unreachable nodes) finds.
//!
//! `cargo run --release -p hvs-storage --example reach_gap -- spread|c128 N STEP STEPS`
#![allow(missing_docs)]
use hvs_storage::{GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

fn gauss(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-300);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(7);
    let clusters: Vec<(Vec<f64>, Vec<Vec<f64>>)> = (0..200)
        .map(|_| {
            let centre: Vec<f64> = (0..dim).map(|_| gauss(&mut rng)).collect();
            let basis: Vec<Vec<f64>> = (0..12)
                .map(|_| (0..dim).map(|_| gauss(&mut rng) * 0.1).collect())
                .collect();
            (centre, basis)
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (c, b) = &clusters[rng.random_range(0..clusters.len())];
            let mut p: Vec<f64> = c.iter().map(|x| x + 0.01 * gauss(&mut rng)).collect();
            for dir in b {
                let w = gauss(&mut rng);
                for (x, d) in p.iter_mut().zip(dir) {
                    *x += w * d;
                }
            }
            p
        })
        .collect()
}

/// exp at the origin of N(0, I) in H^12 (hyperboloid, c = 1).
fn spread(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f64> = (0..12).map(|_| gauss(&mut rng)).collect();
            let r = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let mut p = vec![r.cosh()];
            p.extend(v.iter().map(|x| x / r * r.sinh()));
            p
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).cloned().unwrap_or("c128".into());
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let step: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let steps: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(4);
    let total = n + step * steps;
    let (geom, data) = match kind.as_str() {
        "spread" => (
            GeometrySpec::Hyperboloid {
                dim: 12,
                curvature: 1.0,
            },
            spread(total, 1),
        ),
        _ => (
            GeometrySpec::Euclidean { dim: 128 },
            clustered(total, 128, 1),
        ),
    };
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new("c", geom)).unwrap();
    let mut ids = Vec::new();
    let store = |s: &Store, ids: &mut Vec<uuid::Uuid>, part: &[Vec<f64>]| {
        for chunk in part.chunks(10_000) {
            let b: Vec<NewVector> = chunk
                .iter()
                .map(|p| NewVector::new("c", p.clone()))
                .collect();
            ids.extend(s.batch_store_vectors(b).unwrap().into_iter().map(|r| r.id));
        }
    };
    store(&s, &mut ids, &data[..n]);
    s.flush_index().unwrap();
    let hyperbolic = kind == "spread";
    // Misses among the first `upto` vectors: (by their own coordinates,
    // from 1e-5 away).
    let miss = |s: &Store, ids: &[uuid::Uuid], upto: usize| -> (usize, usize) {
        let found = |v: Vec<f64>, i: usize| {
            let mut q = SearchQuery::new("c", v, 10);
            q.ef = Some(64);
            s.semantic_search(&q)
                .unwrap()
                .iter()
                .any(|h| h.id == ids[i])
        };
        let mut out = (0, 0);
        for (i, p) in data.iter().enumerate().take(upto) {
            out.0 += usize::from(!found(p.clone(), i));
            let mut near = p.clone();
            near[1] += 1e-5;
            if hyperbolic {
                near[0] = (1.0 + near[1..].iter().map(|x| x * x).sum::<f64>()).sqrt();
            }
            out.1 += usize::from(!found(near, i));
        }
        out
    };
    let st = s.get_stats().unwrap().namespaces["c"].clone();
    let (own, near) = miss(&s, &ids, n);
    println!(
        "{kind} base {n}: unreachable {} overflow {} scanned {}; misses by own vector {own}, from 1e-5 away {near}",
        st.unreachable, st.in_overflow, st.scanned_exactly
    );
    for k in 1..=steps {
        let from = n + (k - 1) * step;
        store(&s, &mut ids, &data[from..from + step]);
        let t = Instant::now();
        while s.get_stats().unwrap().namespaces["c"].fresh > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let merged = t.elapsed();
        let st = s.get_stats().unwrap().namespaces["c"].clone();
        let (base_own, base_near) = miss(&s, &ids, n);
        let (all_own, all_near) = miss(&s, &ids, n + k * step);
        println!(
            "+{}: merged in {:.1} s; unreachable {} overflow {} scanned {}; misses by own vector: base {base_own}, all {all_own}; from 1e-5 away: base {base_near}, all {all_near}",
            k * step,
            merged.as_secs_f64(),
            st.unreachable,
            st.in_overflow,
            st.scanned_exactly,
        );
    }
}
