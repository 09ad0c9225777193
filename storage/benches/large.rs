//! The large storage runs: write/read latency at each durability level, and
//! index build, memory, recall@10 against the exact scan, queries per second
//! and latency on hyperbolic (taxonomy and spread) and 128-d Euclidean data,
//! hnsw_rs on equal data as the reference, and the time to reopen.
//!
//! `cargo bench -p hvs-storage --bench large` runs a small configuration;
//! `HVS_BENCH_N=1000000 HVS_BENCH_N128=1000000 cargo bench -p hvs-storage --bench large`
//! the figures in docs/BENCHMARKS.md. Output is Markdown table rows.
//!
//! Environment: `HVS_BENCH_PARTS` (comma-separated, default all of
//! `latency,h12,spread,e128,reopen`), `HVS_BENCH_QUERIES`,
//! `HVS_BENCH_HNSW_RS_N` (hnsw_rs's subset of the 128-d data, default
//! 200,000), `HVS_BENCH_EXPORT` (a folder: the 128-d data and queries are
//! written there as little-endian f32 for `benches/hnswlib_ref.py`).

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hnsw_rs::prelude::{DistL2, Hnsw};
use hvs_geometry::{Hyperboloid, Manifold};
use hvs_storage::{
    Durability, GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn h12() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 12,
        curvature: 1.0,
    }
}

fn latency() {
    println!(
        "\n| durability | store p50 | store p99 | store p999 | retrieve p50 | retrieve p99 | writes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let h = Hyperboloid::new(12, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for (name, durability, n) in [
        ("memory", Durability::Memory, 20_000),
        ("buffered", Durability::Buffered, 3_000),
        ("sync", Durability::Sync, 3_000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(StoreConfig::file(dir.path().join("l.redb"), durability)).unwrap();
        s.create_namespace(SpaceConfig::new("n", h12())).unwrap();
        let mut ids = Vec::new();
        let mut lat = Vec::new();
        for _ in 0..n {
            let v = NewVector::new("n", h.random_point(&mut rng));
            let t = Instant::now();
            ids.push(s.store_vector(v).unwrap().id);
            lat.push(t.elapsed());
        }
        let mut rl = Vec::new();
        for i in 0..n {
            let id = ids[(i * 7919) % ids.len()];
            let t = Instant::now();
            s.retrieve_vector(id).unwrap().unwrap();
            rl.push(t.elapsed());
        }
        println!(
            "| {name} (1 writer) | {} | {} | {} | {} | {} | {n} |",
            us(pct(&mut lat, 0.5)),
            us(pct(&mut lat, 0.99)),
            us(pct(&mut lat, 0.999)),
            us(pct(&mut rl, 0.5)),
            us(pct(&mut rl, 0.99)),
        );
    }
    // Group commit: many writers share each fsync.
    for writers in [16, 64] {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(
            Store::open(StoreConfig::file(
                dir.path().join("g.redb"),
                Durability::Buffered,
            ))
            .unwrap(),
        );
        s.create_namespace(SpaceConfig::new("n", h12())).unwrap();
        let per = 20_000 / writers;
        let t0 = Instant::now();
        let lats: Vec<Duration> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..writers)
                .map(|w| {
                    let s = s.clone();
                    sc.spawn(move || {
                        let h = Hyperboloid::new(12, 1.0).unwrap();
                        let mut rng = StdRng::seed_from_u64(w as u64);
                        (0..per)
                            .map(|_| {
                                let v = NewVector::new("n", h.random_point(&mut rng));
                                let t = Instant::now();
                                s.store_vector(v).unwrap();
                                t.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let secs = t0.elapsed().as_secs_f64();
        let mut lats = lats;
        println!(
            "| buffered, {writers} writers | {} | {} | {} | — | — | {} ({:.0}/s) |",
            us(pct(&mut lats, 0.5)),
            us(pct(&mut lats, 0.99)),
            us(pct(&mut lats, 0.999)),
            per * writers,
            (per * writers) as f64 / secs
        );
    }
}

/// A tree of branching 8 embedded in H^12: children 1–1.6 from their
/// parent in random directions.
fn taxonomy(rng: &mut StdRng, n: usize) -> Vec<Vec<f64>> {
    let h = Hyperboloid::new(12, 1.0).unwrap();
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

fn jitter(h: &Hyperboloid, rng: &mut StdRng, p: &[f64], len: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..13).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = h.project_tangent(p, &w).unwrap();
    let n = h.norm(p, &t).unwrap().max(1e-12);
    h.exp(p, &t.iter().map(|a| a * len / n).collect::<Vec<_>>())
        .unwrap()
}

fn index_run(label: &str, spec: GeometrySpec, points: &[Vec<f64>], queries: &[Vec<f64>]) {
    let before = rss();
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new("n", spec)).unwrap();
    let t0 = Instant::now();
    for chunk in points.chunks(10_000) {
        s.batch_store_vectors(
            chunk
                .iter()
                .map(|p| NewVector::new("n", p.clone()))
                .collect(),
        )
        .unwrap();
    }
    let written = t0.elapsed();
    s.flush_index().unwrap();
    let build = t0.elapsed();
    let mem = rss().saturating_sub(before) as f64 / points.len() as f64;
    let st = s.get_stats().unwrap().namespaces["n"].clone();
    let n_recall = queries.len().min(200);
    let mut found = 0;
    for q in &queries[..n_recall] {
        let exact = s
            .semantic_search(&SearchQuery {
                exact: true,
                ..SearchQuery::new("n", q.clone(), 10)
            })
            .unwrap();
        let approx = s
            .semantic_search(&SearchQuery::new("n", q.clone(), 10))
            .unwrap();
        let truth: std::collections::HashSet<_> = exact.iter().map(|h| h.id).collect();
        found += approx.iter().filter(|h| truth.contains(&h.id)).count();
    }
    let recall = found as f64 / (n_recall * 10) as f64;
    let mut lat = Vec::new();
    let t1 = Instant::now();
    for q in queries {
        let t = Instant::now();
        s.semantic_search(&SearchQuery::new("n", q.clone(), 10))
            .unwrap();
        lat.push(t.elapsed());
    }
    let qps1 = queries.len() as f64 / t1.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let t2 = Instant::now();
    std::thread::scope(|sc| {
        for part in queries.chunks(queries.len().div_ceil(threads)) {
            let s = &s;
            sc.spawn(move || {
                for q in part {
                    s.semantic_search(&SearchQuery::new("n", q.clone(), 10))
                        .unwrap();
                }
            });
        }
    });
    let qps_all = queries.len() as f64 / t2.elapsed().as_secs_f64();
    println!(
        "| {label} | {} | {:.1} s ({:.1} s writes) | {:.0} B | {recall:.4} | {qps1:.0} | {qps_all:.0} | {} | {} | {} | {} | {} |",
        points.len(),
        build.as_secs_f64(),
        written.as_secs_f64(),
        mem,
        us(pct(&mut lat, 0.5)),
        us(pct(&mut lat, 0.99)),
        st.unreachable,
        st.in_overflow,
        st.scanned_exactly,
    );
}

fn hnsw_rs_run(points: &[Vec<f64>], queries: &[Vec<f64>]) {
    let data: Vec<Vec<f32>> = points
        .iter()
        .map(|p| p.iter().map(|a| *a as f32).collect())
        .collect();
    let t0 = Instant::now();
    let hnsw = Hnsw::<f32, DistL2>::new(16, data.len(), 16, 128, DistL2 {});
    let refs: Vec<(&Vec<f32>, usize)> = data.iter().enumerate().map(|(i, v)| (v, i)).collect();
    hnsw.parallel_insert(&refs);
    let build = t0.elapsed();
    let n_recall = queries.len().min(200);
    let mut found = 0;
    for q in &queries[..n_recall] {
        let qf: Vec<f32> = q.iter().map(|a| *a as f32).collect();
        let mut exact: Vec<(f64, usize)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(),
                    i,
                )
            })
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: std::collections::HashSet<usize> = exact[..10].iter().map(|e| e.1).collect();
        found += hnsw
            .search(&qf, 10, 64)
            .iter()
            .filter(|n| truth.contains(&n.d_id))
            .count();
    }
    let mut lat = Vec::new();
    let t1 = Instant::now();
    for q in queries {
        let qf: Vec<f32> = q.iter().map(|a| *a as f32).collect();
        let t = Instant::now();
        hnsw.search(&qf, 10, 64);
        lat.push(t.elapsed());
    }
    let qps1 = queries.len() as f64 / t1.elapsed().as_secs_f64();
    println!(
        "| hnsw_rs 0.3 (f32, M=16, efc=128, ef=64), E^128 | {} | {:.1} s (parallel) | — | {:.4} | {qps1:.0} | — | {} | {} | — | — | — |",
        points.len(),
        build.as_secs_f64(),
        found as f64 / (n_recall * 10) as f64,
        us(pct(&mut lat, 0.5)),
        us(pct(&mut lat, 0.99)),
    );
}

fn reopen_run(points: &[Vec<f64>]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.redb");
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        s.create_namespace(SpaceConfig::new("n", h12())).unwrap();
        for chunk in points.chunks(10_000) {
            s.batch_store_vectors(
                chunk
                    .iter()
                    .map(|p| NewVector::new("n", p.clone()))
                    .collect(),
            )
            .unwrap();
        }
        s.flush_index().unwrap();
        s.close().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let mut graphs = path.as_os_str().to_owned();
    graphs.push(".graphs");
    let dump_size: u64 = std::fs::read_dir(&graphs)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let first_query = || {
        let t0 = Instant::now();
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let hits = s
            .semantic_search(&SearchQuery::new("n", points[0].clone(), 10))
            .unwrap();
        assert_eq!(hits.len(), 10);
        let took = t0.elapsed();
        let restored = s.get_stats().unwrap().namespaces["n"].restored_from_dump;
        (s, took, restored)
    };
    let (s, loaded, restored) = first_query();
    drop(s);
    std::fs::remove_dir_all(&graphs).unwrap();
    let (s, rebuilt, _) = first_query();
    std::mem::forget(s); // its graph dump is not part of the measurement
    println!(
        "\nReopen of {} H^12 taxonomy vectors ({:.0} MB database, {:.0} MB graph dump) until the first query is answered: {:.1} s loading the dump ({restored} nodes verified and kept), {:.1} s rebuilding without it",
        points.len(),
        size as f64 / 1e6,
        dump_size as f64 / 1e6,
        loaded.as_secs_f64(),
        rebuilt.as_secs_f64(),
    );
}

/// Writes points as consecutive little-endian f32 coordinates.
fn export(path: &std::path::Path, points: &[Vec<f64>]) {
    let mut bytes = Vec::with_capacity(points.len() * points[0].len() * 4);
    for p in points {
        for a in p {
            bytes.extend_from_slice(&(*a as f32).to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let n = env("HVS_BENCH_N", 50_000);
    let n128 = env("HVS_BENCH_N128", 20_000);
    let nq = env("HVS_BENCH_QUERIES", 1_000);
    let parts = std::env::var("HVS_BENCH_PARTS")
        .unwrap_or_else(|_| "latency,h12,spread,e128,reopen".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    println!(
        "# hvs-storage large bench: N = {n} (12-d), {n128} (128-d), {nq} queries, parts {parts}"
    );
    if part("latency") {
        latency();
    }

    println!(
        "\n| data | vectors | build (writes + graph) | memory / vector | recall@10 | QPS 1 thread | QPS all cores | p50 | p99 | unreachable | in overflow graphs | scanned exactly |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rng = StdRng::seed_from_u64(7);
    let h = Hyperboloid::new(12, 1.0).unwrap();
    let tax = taxonomy(&mut rng, n);
    let tq: Vec<Vec<f64>> = (0..nq)
        .map(|i| {
            let p = &tax[(i * 7919) % tax.len()];
            jitter(&h, &mut rng, p, 0.3)
        })
        .collect();
    if part("h12") {
        index_run("H^12 taxonomy (branching 8)", h12(), &tax, &tq);
    }
    if part("spread") {
        let uni: Vec<Vec<f64>> = (0..n).map(|_| h.random_point(&mut rng)).collect();
        let uq: Vec<Vec<f64>> = (0..nq).map(|_| h.random_point(&mut rng)).collect();
        index_run("H^12 spread (exp0 of N(0, I))", h12(), &uni, &uq);
    }
    if part("e128") {
        let mut rng = StdRng::seed_from_u64(128);
        let e128: Vec<Vec<f64>> = (0..n128)
            .map(|_| (0..128).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let eq: Vec<Vec<f64>> = (0..nq)
            .map(|_| (0..128).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        if let Ok(dir) = std::env::var("HVS_BENCH_EXPORT") {
            let dir = std::path::Path::new(&dir);
            std::fs::create_dir_all(dir).unwrap();
            export(&dir.join("e128_base.f32"), &e128);
            export(&dir.join("e128_queries.f32"), &eq);
        }
        index_run(
            "E^128 uniform",
            GeometrySpec::Euclidean { dim: 128 },
            &e128,
            &eq,
        );
        let sub = env("HVS_BENCH_HNSW_RS_N", 200_000).min(e128.len());
        hnsw_rs_run(&e128[..sub], &eq);
    }
    if part("reopen") {
        reopen_run(&tax);
    }
}
