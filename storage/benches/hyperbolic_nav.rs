//! Geometry-aware navigation for hyperbolic graphs, measured against the
//! current design (docs/STORAGE.md, "Navigating hyperbolic graphs"): the
//! same H^12 points indexed
//!
//! - by HVS as it is: an `f64` graph ranking by `-<x,y>_L - 1` through a
//!   Rust callback, searched and re-ranked exactly;
//! - by usearch's own `f32` L2 kernel over the points' **Poincaré-ball**
//!   coordinates `x[1..] / (1 + x0)`, the candidates re-ranked by the exact
//!   hyperbolic distance;
//! - the same over the **Klein** coordinates `x[1..] / x0` (geodesics are
//!   straight lines there);
//! - the same over the **tangent space at the origin** (`log_0 x`), where
//!   radial distances are exact.
//!
//! Each: build time on both cores, then recall@10 against the exact scan and
//! single-thread µs per query for a sweep of `ef`. Data: the H^12 taxonomy,
//! spread points (`random_point`), and the deep unbalanced tree near the
//! origin and moved far out (`large/data.rs`).
//!
//! `HVS_NAV_N=200000 cargo bench -p hvs-storage --bench hyperbolic_nav`

#![allow(missing_docs)]

#[path = "large/data.rs"]
#[allow(dead_code)]
mod data;

use std::time::Instant;

use hvs_geometry::Manifold;
use hvs_storage::{GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

const EFS: [usize; 5] = [16, 32, 64, 128, 256];
const K: usize = 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The exact `K` nearest of `base` to each query, by index.
fn truth(base: &[Vec<f64>], queries: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let h = data::h12();
    queries
        .iter()
        .map(|q| {
            let mut d: Vec<(f64, usize)> = base
                .iter()
                .enumerate()
                .map(|(i, p)| (h.distance_unchecked(q, p), i))
                .collect();
            d.select_nth_unstable_by(K, |a, b| a.0.total_cmp(&b.0));
            d[..K].iter().map(|(_, i)| *i).collect()
        })
        .collect()
}

fn recall(found: &[usize], truth: &[usize]) -> usize {
    found.iter().filter(|i| truth.contains(i)).count()
}

fn row(data: &str, how: &str, build: f64, ef: usize, hits: usize, nq: usize, secs: f64) {
    println!(
        "| {data} | {how} | {build:.1} s | {ef} | {:.4} | {:.1} µs |",
        hits as f64 / (K * nq) as f64,
        secs * 1e6 / nq as f64
    );
}

/// HVS as it is.
fn hvs(name: &str, base: &[Vec<f64>], queries: &[Vec<f64>], truth: &[Vec<usize>]) {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let spec = GeometrySpec::Hyperboloid {
        dim: 12,
        curvature: 1.0,
    };
    s.create_namespace(SpaceConfig::new("n", spec)).unwrap();
    let mut ids = Vec::new();
    for chunk in base.chunks(10_000) {
        let batch = chunk
            .iter()
            .map(|p| NewVector::new("n", p.clone()))
            .collect();
        ids.extend(
            s.batch_store_vectors(batch)
                .unwrap()
                .into_iter()
                .map(|r| r.id),
        );
    }
    let t = Instant::now();
    s.flush_index().unwrap();
    let build = t.elapsed().as_secs_f64();
    let index_of: std::collections::HashMap<uuid::Uuid, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for ef in EFS {
        let t = Instant::now();
        let mut hits = 0;
        for (q, tr) in queries.iter().zip(truth) {
            let mut sq = SearchQuery::new("n", q.clone(), K);
            sq.ef = Some(ef);
            let found: Vec<usize> = s
                .semantic_search(&sq)
                .unwrap()
                .iter()
                .map(|h| index_of[&h.id])
                .collect();
            hits += recall(&found, tr);
        }
        row(
            name,
            "HVS (f64, -<x,y>_L)",
            build,
            ef,
            hits,
            queries.len(),
            t.elapsed().as_secs_f64(),
        );
    }
}

/// A point's coordinates in one of the flat charts, as `f32`.
fn chart(how: &str, x: &[f64]) -> Vec<f32> {
    let h = data::h12();
    match how {
        "poincare" => x[1..].iter().map(|v| (v / (1.0 + x[0])) as f32).collect(),
        "klein" => x[1..].iter().map(|v| (v / x[0]) as f32).collect(),
        _ => h.log0(x).unwrap().iter().map(|v| *v as f32).collect(),
    }
}

/// usearch's f32 L2 over a chart, candidates re-ranked exactly.
fn charted(name: &str, how: &str, base: &[Vec<f64>], queries: &[Vec<f64>], truth: &[Vec<usize>]) {
    let h = data::h12();
    let opts = usearch::IndexOptions {
        dimensions: 12,
        metric: usearch::MetricKind::L2sq,
        quantization: usearch::ScalarKind::F32,
        connectivity: 16,
        expansion_add: 128,
        expansion_search: 1,
        multi: false,
    };
    let g = usearch::Index::new(&opts).unwrap();
    g.reserve_capacity_and_threads(base.len(), 2).unwrap();
    let coords: Vec<Vec<f32>> = base.iter().map(|p| chart(how, p)).collect();
    let t = Instant::now();
    std::thread::scope(|sc| {
        for part in 0..2 {
            let (g, coords) = (&g, &coords);
            sc.spawn(move || {
                for (i, p) in coords.iter().enumerate().skip(part).step_by(2) {
                    g.add(i as u64, p).unwrap();
                }
            });
        }
    });
    let build = t.elapsed().as_secs_f64();
    let label = format!("usearch f32 L2 over {how}, exact re-rank");
    for ef in EFS {
        let t = Instant::now();
        let mut hits = 0;
        for (q, tr) in queries.iter().zip(truth) {
            let m = g.search(&chart(how, q), ef).unwrap();
            let mut c: Vec<(f64, usize)> = m
                .keys
                .iter()
                .map(|k| (h.distance_unchecked(q, &base[*k as usize]), *k as usize))
                .collect();
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            let found: Vec<usize> = c.iter().take(K).map(|(_, i)| *i).collect();
            hits += recall(&found, tr);
        }
        row(
            name,
            &label,
            build,
            ef,
            hits,
            queries.len(),
            t.elapsed().as_secs_f64(),
        );
    }
}

/// A data set's name, base points and queries.
type DataSet = (String, Vec<Vec<f64>>, Vec<Vec<f64>>);

fn main() {
    let n = env("HVS_NAV_N", 50_000);
    let nq = env("HVS_NAV_QUERIES", 200);
    let parts = std::env::var("HVS_NAV_PARTS").unwrap_or_else(|_| "taxonomy,spread,deep".into());
    let h = data::h12();
    let mut sets: Vec<DataSet> = Vec::new();
    if parts.contains("taxonomy") {
        let mut rng = StdRng::seed_from_u64(11);
        let all = data::taxonomy(&mut rng, n + nq);
        let (base, queries) = all.split_at(n);
        sets.push(("H^12 taxonomy".into(), base.to_vec(), queries.to_vec()));
    }
    if parts.contains("spread") {
        let mut rng = StdRng::seed_from_u64(12);
        let base = (0..n).map(|_| h.random_point(&mut rng)).collect();
        let queries = (0..nq).map(|_| h.random_point(&mut rng)).collect();
        sets.push(("H^12 spread".into(), base, queries));
    }
    if parts.contains("deep") {
        let tree = data::deep_tree(13, n, nq);
        let far = 12.0;
        sets.push((
            format!(
                "deep tree, near (median r {:.1})",
                data::median_radius(&tree.points)
            ),
            tree.points.clone(),
            tree.queries.clone(),
        ));
        let points = data::move_out(&tree.points, far);
        let queries = data::move_out(&tree.queries, far);
        sets.push((
            format!(
                "deep tree, far (median r {:.1})",
                data::median_radius(&points)
            ),
            points,
            queries,
        ));
    }
    println!("\n| data | index | build | ef | recall@10 | per query |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, base, queries) in &sets {
        let tr = truth(base, queries);
        hvs(name, base, queries, &tr);
        for how in ["poincare", "klein", "log0"] {
            charted(name, how, base, queries, &tr);
        }
    }
}
