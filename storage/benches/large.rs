//! The large storage runs: write/read latency at each durability level;
//! for each data set the index build (time, memory per vector) and a
//! recall/QPS curve from a per-query `ef` sweep (recall@10 against exact
//! neighbours computed in the bench, single-thread QPS, p50, p99), for HVS
//! beside hnsw_rs (and hnswlib through `benches/hnswlib_ref.py` on the
//! exported data); and the time to reopen.
//!
//! `cargo bench -p hvs-storage --bench large` runs every part at a small
//! size; docs/BENCHMARKS.md ("Index at scale") has the commands of the
//! recorded runs. Output is Markdown; progress goes to stderr.
//!
//! Parts (`HVS_BENCH_PARTS`, comma-separated, default all):
//! - `latency`: store/retrieve latency per durability level;
//! - `h12`, `spread`: H^12 taxonomy (branching 8) and exp0 of N(0, I), HVS only;
//! - `e128`: uniform in [-1, 1]^128, the worst case;
//! - `c128`, `c512`: a mixture of 1,000 Gaussians each in its own 8–16-d
//!   subspace, plus noise (`large/data.rs`);
//! - `s512`: `c512`'s points (and queries) normalised onto the unit sphere
//!   S^511, in a spherical namespace: the set for `i8` graphs;
//! - `deep`: a 20-level tree with heavy-tailed fan-out in H^12, rooted at the
//!   origin ("near") and moved `HVS_BENCH_DEEP_SHIFT` out by an isometry
//!   ("far"), HVS only;
//! - `reopen`: the H^12 taxonomy reopened with and without its graph dump.
//!
//! Environment: `HVS_BENCH_N` (12-d sets, default 50,000), `HVS_BENCH_N128`
//! (`e128`, `c128`; 20,000), `HVS_BENCH_N512` (`c512`; 20,000),
//! `HVS_BENCH_NDEEP` (`deep`; 50,000), `HVS_BENCH_QUERIES` (1,000),
//! `HVS_BENCH_EF` (the sweep, default 10,16,24,32,48,64,96,128,192,256,384,512),
//! `HVS_BENCH_M` (every graph's `connectivity`, M; default 16),
//! `HVS_BENCH_EFC` (every graph's `expansion_add`, HVS's and the other
//! libraries'; default the store's, 128),
//! `HVS_BENCH_DATATYPES` (HVS graph types for the Euclidean and spherical
//! sets, default `f32`; any of `f32,f16,f64`, and `i8` for `s512` only), `HVS_BENCH_LIBS` (default `hvs,hnsw_rs`; `usearch`: usearch alone, with HVS's graph settings, for the Euclidean sets),
//! `HVS_BENCH_STORE` (`file`, default: a redb file in a temporary folder,
//! as `hvs serve` keeps vectors; or `memory`), `HVS_BENCH_CACHE_MB`
//! (redb's page cache, as `hvs serve --cache-mb`; default the store's, 256 MiB), `HVS_BENCH_DEEP_SHIFT`
//! (default 10), `HVS_BENCH_EXPORT` (a folder, relative to `storage/` where
//! `cargo bench` runs: each Euclidean set's base, queries and exact
//! neighbours are written there for `benches/hnswlib_ref.py`, and the
//! command to run from the workspace root is printed).

#![allow(missing_docs)]

/// The allocator `hvs serve` runs with, so that memory per vector is what
/// the server's would be (glibc's keeps much of what a burst freed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "large/curves.rs"]
mod curves;
#[path = "large/data.rs"]
mod data;
#[path = "large/truth.rs"]
mod truth;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use curves::{Base, DataSet, Settings, Table, pct, us};
use data::Flat;
use hvs_geometry::{Hyperboloid, Manifold};
use hvs_storage::{
    Datatype, Durability, GeometrySpec, IndexParams, NewVector, SearchQuery, SpaceConfig, Store,
    StoreConfig,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
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

/// Writes values as consecutive little-endian 4-byte words.
fn export<T: Copy>(path: &Path, values: impl Iterator<Item = T>, bytes: impl Fn(T) -> [u8; 4]) {
    let out: Vec<u8> = values.flat_map(bytes).collect();
    std::fs::write(path, out).unwrap();
}

/// What the command line of the whole process chose.
struct Run {
    settings: Settings,
    datatypes: Vec<Datatype>,
    hvs: bool,
    hnsw_rs: bool,
    usearch: bool,
    export: Option<PathBuf>,
    nq: usize,
}

fn datatype(name: &str) -> Datatype {
    match name {
        "f64" => Datatype::F64,
        "f32" => Datatype::F32,
        "f16" => Datatype::F16,
        "i8" => Datatype::I8,
        other => panic!("HVS_BENCH_DATATYPES: unknown datatype {other:?}"),
    }
}

/// A set's base rows and queries scaled to norm 1 (in `f32`).
fn on_sphere((mut base, mut queries): (Flat, Flat)) -> (Flat, Flat) {
    for f in [&mut base, &mut queries] {
        for row in f.data.chunks_mut(f.dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
    (base, queries)
}

/// A Euclidean set (or, for a part named `s…`, one on the unit sphere)
/// through HVS (each datatype) and hnsw_rs, exported for hnswlib when
/// asked.
fn euclidean_part(name: &str, label: &str, (base, queries): (Flat, Flat), run: &Run) {
    let t = Instant::now();
    let truth = truth::euclidean(&base, &queries, run.settings.k);
    let truth_secs = t.elapsed().as_secs_f64();
    if let Some(dir) = &run.export {
        // `cargo bench` runs in the package's folder: print absolute paths.
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let file = |what: &str| dir.join(format!("{name}_{what}"));
        export(
            &file("base.f32"),
            base.data.iter().copied(),
            f32::to_le_bytes,
        );
        export(
            &file("queries.f32"),
            queries.data.iter().copied(),
            f32::to_le_bytes,
        );
        export(
            &file("truth.i32"),
            truth.iter().flatten().map(|i| *i as i32),
            i32::to_le_bytes,
        );
        let efs: Vec<String> = run.settings.efs.iter().map(usize::to_string).collect();
        println!(
            "\nhnswlib on the same data: `target/python-venv/bin/python storage/benches/hnswlib_ref.py --base {} --queries {} --truth {} --dim {} --k {} --ef {} --ef-construction {} --label \"{label}\"`",
            file("base.f32").display(),
            file("queries.f32").display(),
            file("truth.i32").display(),
            base.dim,
            run.settings.k,
            efs.join(","),
            run.settings.index.expansion_add,
        );
    }
    let set = DataSet {
        label: label.into(),
        // Nearest by chord is nearest by angle: the same neighbours.
        spec: if name.starts_with('s') {
            GeometrySpec::Sphere {
                dim: base.dim - 1,
                curvature: 1.0,
            }
        } else {
            GeometrySpec::Euclidean { dim: base.dim }
        },
        base: Base::F32(&base),
        queries: (0..queries.len()).map(|i| queries.point(i)).collect(),
        truth,
    };
    println!(
        "\n### {label}: {} vectors, {} queries, exact neighbours in {truth_secs:.1} s",
        base.len(),
        queries.len()
    );
    let mut table = Table::default();
    if run.hvs {
        for d in &run.datatypes {
            curves::hvs(&set, Some(*d), &run.settings, &mut table);
        }
    }
    if run.usearch {
        curves::usearch(&set, &base, &run.settings, &mut table);
    }
    if run.hnsw_rs {
        curves::hnsw_rs(&set, &base, &run.settings, &mut table);
    }
    table.print();
}

/// Each query's [`truth::CANDIDATES`] nearest points by the plain Lorentz
/// product: a cheap pass over every point (the exact distance costs
/// 0.4–1.3 µs a pair), valid for points near the origin.
fn lorentz_candidates(points: &[Vec<f64>], queries: &[Vec<f64>]) -> Vec<Vec<u32>> {
    truth::by_distance(points.len(), queries.len(), truth::CANDIDATES, |q, i| {
        truth::lorentz_cosh(&queries[q], &points[i])
    })
}

/// An H^12 set with its exact neighbours under the geometry crate's
/// hyperbolic distance, picked from `candidates` (each query's nearest by a
/// cheaper ordering, or by the same points before an isometry). The first
/// ten queries are checked against a full exact scan.
fn hyperbolic_set<'a>(
    label: String,
    points: &'a [Vec<f64>],
    queries: Vec<Vec<f64>>,
    candidates: &[Vec<u32>],
    run: &Run,
) -> DataSet<'a> {
    let h = data::h12();
    let t = Instant::now();
    let k = run.settings.k;
    let exact = |q: usize, i: usize| h.distance_unchecked(&queries[q], &points[i]);
    let truth = truth::rerank(candidates, k, exact);
    let checked = queries.len().min(10);
    let full = truth::by_distance(points.len(), checked, k, exact);
    for (q, (a, b)) in full.iter().zip(&truth).enumerate() {
        let (mut a, mut b) = (a.clone(), b.clone());
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "{label}: query {q}'s candidates miss a true neighbour"
        );
    }
    run.settings.progress(&format!(
        "{label}: exact neighbours in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    DataSet {
        label,
        spec: h12(),
        base: Base::F64(points),
        queries,
        truth,
    }
}

/// HVS on H^12 sets, one table.
fn hyperbolic_part(sets: &[DataSet<'_>], run: &Run) {
    let mut table = Table::default();
    if run.hvs {
        for set in sets {
            curves::hvs(set, None, &run.settings, &mut table);
        }
    }
    table.print();
}

fn deep_part(run: &Run) {
    let n = env("HVS_BENCH_NDEEP", 50_000);
    let shift = std::env::var("HVS_BENCH_DEEP_SHIFT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let tree = data::deep_tree(20, n, run.nq);
    let far = data::move_out(&tree.points, shift);
    let far_queries = data::move_out(&tree.queries, shift);
    println!(
        "\n### Deep tree in H^12: {} nodes in {} levels, at most {} children under one parent, {} parents with 100 or more; median radius {:.1} near the origin, {:.1} moved {shift} out; {} queries (new leaves)",
        tree.points.len(),
        data::DEEP_LEVELS,
        tree.max_fanout,
        tree.parents_over_100,
        data::median_radius(&tree.points),
        data::median_radius(&far),
        run.nq,
    );
    // The move is an isometry: the near points' candidates are the far ones'.
    let candidates = lorentz_candidates(&tree.points, &tree.queries);
    let sets = [
        hyperbolic_set(
            "deep tree, near".into(),
            &tree.points,
            tree.queries.clone(),
            &candidates,
            run,
        ),
        hyperbolic_set(
            format!("deep tree, far ({shift} out)"),
            &far,
            far_queries,
            &candidates,
            run,
        ),
    ];
    hyperbolic_part(&sets, run);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let n = env("HVS_BENCH_N", 50_000);
    let n128 = env("HVS_BENCH_N128", 20_000);
    let n512 = env("HVS_BENCH_N512", 20_000);
    let nq = env("HVS_BENCH_QUERIES", 1_000);
    let parts = env_list(
        "HVS_BENCH_PARTS",
        "latency,h12,spread,e128,c128,c512,s512,deep,reopen",
    );
    let part = |name: &str| parts.iter().any(|p| p == name);
    let libs = env_list("HVS_BENCH_LIBS", "hvs,hnsw_rs");
    let run = Run {
        settings: Settings {
            k: 10,
            efs: env_list("HVS_BENCH_EF", "10,16,24,32,48,64,96,128,192,256,384,512")
                .iter()
                .map(|e| e.parse().expect("HVS_BENCH_EF: a list of numbers"))
                .collect(),
            file_store: std::env::var("HVS_BENCH_STORE").map_or(true, |s| s != "memory"),
            cache_bytes: std::env::var("HVS_BENCH_CACHE_MB")
                .ok()
                .map(|mb| mb.parse::<usize>().expect("HVS_BENCH_CACHE_MB: a number") << 20),
            index: IndexParams {
                connectivity: env("HVS_BENCH_M", IndexParams::default().connectivity),
                expansion_add: env("HVS_BENCH_EFC", IndexParams::default().expansion_add),
                ..IndexParams::default()
            },
            started: Instant::now(),
            built_one: Cell::new(false),
        },
        datatypes: env_list("HVS_BENCH_DATATYPES", "f32")
            .iter()
            .map(|d| datatype(d))
            .collect(),
        hvs: libs.iter().any(|l| l == "hvs"),
        hnsw_rs: libs.iter().any(|l| l == "hnsw_rs"),
        usearch: libs.iter().any(|l| l == "usearch"),
        export: std::env::var("HVS_BENCH_EXPORT").ok().map(PathBuf::from),
        nq,
    };
    println!(
        "# hvs-storage large bench: N = {n} (12-d), {n128} (128-d), {n512} (512-d), {nq} queries, parts {}, {} store, k = {}",
        parts.join(","),
        if run.settings.file_store {
            "file"
        } else {
            "memory"
        },
        run.settings.k,
    );
    if part("latency") {
        latency();
    }
    let mut rng = StdRng::seed_from_u64(7);
    let h = data::h12();
    let tax = data::taxonomy(&mut rng, n);
    if part("h12") || part("spread") {
        let tq: Vec<Vec<f64>> = (0..nq)
            .map(|i| data::jitter(&h, &mut rng, &tax[(i * 7919) % tax.len()], 0.3))
            .collect();
        let spread: Vec<Vec<f64>> = (0..n).map(|_| h.random_point(&mut rng)).collect();
        let sq: Vec<Vec<f64>> = (0..nq).map(|_| h.random_point(&mut rng)).collect();
        let mut sets = Vec::new();
        if part("h12") {
            let candidates = lorentz_candidates(&tax, &tq);
            let label = "H^12 taxonomy (branching 8)".into();
            sets.push(hyperbolic_set(label, &tax, tq, &candidates, &run));
        }
        if part("spread") {
            let candidates = lorentz_candidates(&spread, &sq);
            let label = "H^12 spread (exp0 of N(0, I))".into();
            sets.push(hyperbolic_set(label, &spread, sq, &candidates, &run));
        }
        println!("\n### H^12 taxonomy and spread: {n} vectors each, {nq} queries");
        hyperbolic_part(&sets, &run);
    }
    if part("e128") {
        euclidean_part(
            "e128",
            "E^128 uniform",
            data::uniform(128, n128, nq, 128),
            &run,
        );
    }
    if part("c128") {
        let label = "E^128 clustered";
        euclidean_part("c128", label, data::clustered(1128, n128, nq, 128), &run);
    }
    if part("c512") {
        let label = "E^512 clustered";
        euclidean_part("c512", label, data::clustered(1512, n512, nq, 512), &run);
    }
    if part("s512") {
        let label = "S^511 clustered";
        let set = on_sphere(data::clustered(1512, n512, nq, 512));
        euclidean_part("s512", label, set, &run);
    }
    if part("deep") {
        deep_part(&run);
    }
    if part("reopen") {
        reopen_run(&tax);
    }
}
