//! One data set through each index: the build (time and memory), then for
//! every `ef` of the sweep recall@k against the exact truth and
//! single-thread QPS, p50 and p99, as Markdown rows.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use hnsw_rs::prelude::{DistL2, Hnsw, Neighbour};
use hvs_storage::{
    Datatype, Durability, GeometrySpec, IndexParams, NewVector, SearchHit, SearchQuery,
    SpaceConfig, Store, StoreConfig,
};

use crate::data::Flat;
use crate::truth;

/// The vectors an index is built from.
pub(crate) enum Base<'a> {
    /// Euclidean sets, `f32` (HVS gets each as `f64`).
    F32(&'a Flat),
    /// Hyperbolic sets, hyperboloid coordinates.
    F64(&'a [Vec<f64>]),
}

impl Base<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::F32(f) => f.len(),
            Self::F64(p) => p.len(),
        }
    }

    fn point(&self, i: usize) -> Vec<f64> {
        match self {
            Self::F32(f) => f.point(i),
            Self::F64(p) => p[i].clone(),
        }
    }
}

/// A data set with its queries and their exact nearest neighbours.
pub(crate) struct DataSet<'a> {
    pub(crate) label: String,
    pub(crate) spec: GeometrySpec,
    pub(crate) base: Base<'a>,
    pub(crate) queries: Vec<Vec<f64>>,
    pub(crate) truth: Vec<Vec<u32>>,
}

/// What every run of a bench process shares.
pub(crate) struct Settings {
    pub(crate) k: usize,
    pub(crate) efs: Vec<usize>,
    /// A redb file in a temporary folder (as `hvs serve` keeps its vectors)
    /// rather than redb's in-memory backend.
    pub(crate) file_store: bool,
    /// redb's page cache (`StoreConfig::cache_bytes`).
    pub(crate) cache_bytes: Option<usize>,
    /// The graph settings of every index built (`HVS_BENCH_M` and
    /// `HVS_BENCH_EFC` set the build's `connectivity` and `expansion_add`;
    /// the rest are the store's defaults).
    pub(crate) index: IndexParams,
    pub(crate) started: Instant,
    /// Whether an index has been built in this process already.
    pub(crate) built_one: Cell<bool>,
}

impl Settings {
    /// The growth of the process's RSS since `before`, per vector, for the
    /// first index built in the process only: later ones reuse memory the
    /// allocator kept from earlier ones, and their growth means nothing.
    fn memory_per_vector(&self, before: u64, n: usize) -> String {
        if self.built_one.replace(true) {
            return "— (not first)".into();
        }
        format!("{:.0} B", rss().saturating_sub(before) as f64 / n as f64)
    }

    pub(crate) fn progress(&self, what: &str) {
        eprintln!("[{:7.1} s] {what}", self.started.elapsed().as_secs_f64());
    }
}

/// The rows of one data set's two tables, printed together at its end.
#[derive(Default)]
pub(crate) struct Table {
    builds: Vec<String>,
    curve: Vec<String>,
}

impl Table {
    pub(crate) fn print(&self) {
        println!(
            "\n| data | index | build (writes + graph) | memory / vector | QPS all cores (store's ef) | unreachable | attached | in overflow graphs | scanned exactly |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        self.builds.iter().for_each(|r| println!("{r}"));
        println!("\n| data | index | ef | recall@10 | QPS 1 thread | p50 | p99 |");
        println!("|---|---|---:|---:|---:|---:|---:|");
        self.curve.iter().for_each(|r| println!("{r}"));
    }
}

pub(crate) fn rss() -> u64 {
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

pub(crate) fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Runs every query once per `ef` on this thread, timing each search alone
/// (`prepare` builds the queries before the clock starts, `ids` turns the
/// answers into base indices after it stops), and adds a curve row per `ef`.
fn sweep<Q, R>(
    set: &DataSet<'_>,
    index: &str,
    settings: &Settings,
    table: &mut Table,
    prepare: impl Fn(usize) -> Vec<Q>,
    run: impl Fn(&Q) -> R,
    ids: impl Fn(R) -> Vec<u32>,
) {
    // Warm-up, so the first ef does not pay for cold caches and page faults.
    let warm = prepare(settings.efs[0]);
    warm.iter().take(100).for_each(|q| drop(run(q)));
    for &ef in &settings.efs {
        let queries = prepare(ef);
        let mut lat = Vec::with_capacity(queries.len());
        let mut answers = Vec::with_capacity(queries.len());
        let t0 = Instant::now();
        for q in &queries {
            let t = Instant::now();
            answers.push(run(q));
            lat.push(t.elapsed());
        }
        let qps = queries.len() as f64 / t0.elapsed().as_secs_f64();
        let found: Vec<Vec<u32>> = answers.into_iter().map(&ids).collect();
        let recall = truth::recall(&set.truth, &found);
        table.curve.push(format!(
            "| {} | {index} | {ef} | {recall:.4} | {qps:.0} | {} | {} |",
            set.label,
            us(pct(&mut lat, 0.5)),
            us(pct(&mut lat, 0.99)),
        ));
    }
    settings.progress(&format!("{}: {index} swept", set.label));
}

fn graph_settings(settings: &Settings) -> String {
    let p = settings.index;
    format!("M={}, efc={}", p.connectivity, p.expansion_add)
}

/// HVS: every vector written in batches of 10,000, `flush_index`, then the
/// sweep through `semantic_search` with a per-query `ef`.
pub(crate) fn hvs(
    set: &DataSet<'_>,
    datatype: Option<Datatype>,
    settings: &Settings,
    table: &mut Table,
) {
    let mut config = SpaceConfig::new("n", set.spec.clone());
    if matches!(set.spec, GeometrySpec::Sphere { .. }) {
        // The `f32` rows, normalised in `f32`, are on the sphere to about
        // 1e-7: the store puts them on it in `f64`.
        config.on_invalid = hvs_storage::InvalidPointPolicy::Project;
    }
    if let Some(d) = datatype {
        config = config.with_datatype(d);
    }
    let index = format!(
        "HVS {} ({})",
        config.datatype().name(),
        graph_settings(settings)
    );
    let n = set.base.len();
    let mut ids = Vec::with_capacity(n);
    let dir = tempfile::tempdir().unwrap();
    let before = rss();
    let mut store = if settings.file_store {
        StoreConfig::file(dir.path().join("bench.redb"), Durability::Buffered)
    } else {
        StoreConfig::memory()
    };
    store.cache_bytes = settings.cache_bytes;
    store.index = settings.index;
    let s = Store::open(store).unwrap();
    s.create_namespace(config).unwrap();
    let t0 = Instant::now();
    for start in (0..n).step_by(10_000) {
        let batch = (start..(start + 10_000).min(n))
            .map(|i| NewVector::new("n", set.base.point(i)))
            .collect();
        let stored = s.batch_store_vectors(batch).unwrap();
        ids.extend(stored.iter().map(|r| r.id));
    }
    let written = t0.elapsed();
    s.flush_index().unwrap();
    let build = t0.elapsed();
    let memory = settings.memory_per_vector(before, n);
    settings.progress(&format!(
        "{}: {index} built in {:.1} s",
        set.label,
        build.as_secs_f64()
    ));
    let st = s.get_stats().unwrap().namespaces["n"].clone();
    let at_store_ef: Vec<SearchQuery> = set
        .queries
        .iter()
        .map(|q| SearchQuery::new("n", q.clone(), settings.k))
        .collect();
    let t1 = Instant::now();
    s.batch_search(&at_store_ef).unwrap();
    let qps_all = at_store_ef.len() as f64 / t1.elapsed().as_secs_f64();
    table.builds.push(format!(
        "| {} | {index} | {:.1} s ({:.1} s writes) | {memory} | {qps_all:.0} | {} | {} | {} | {} |",
        set.label,
        build.as_secs_f64(),
        written.as_secs_f64(),
        st.unreachable,
        st.attached,
        st.in_overflow,
        st.scanned_exactly,
    ));
    let position: HashMap<_, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    let prepare = |ef| {
        let query = |q: &Vec<f64>| SearchQuery::new("n", q.clone(), settings.k);
        set.queries
            .iter()
            .map(|q| SearchQuery {
                ef: Some(ef),
                ..query(q)
            })
            .collect()
    };
    let search = |q: &SearchQuery| s.semantic_search(q).unwrap();
    let ids = |hits: Vec<SearchHit>| hits.iter().map(|h| position[&h.id]).collect();
    sweep(set, &index, settings, table, prepare, search, ids);
}

/// The build row of a library other than HVS, built on every core in
/// `build` from an RSS of `before`.
fn library_built(
    set: &DataSet<'_>,
    index: &str,
    settings: &Settings,
    table: &mut Table,
    before: u64,
    build: Duration,
) {
    let memory = settings.memory_per_vector(before, set.base.len());
    settings.progress(&format!(
        "{}: {index} built in {:.1} s",
        set.label,
        build.as_secs_f64()
    ));
    table.builds.push(format!(
        "| {} | {index} | {:.1} s (parallel) | {memory} | — | — | — | — | — |",
        set.label,
        build.as_secs_f64(),
    ));
}

/// hnsw_rs (f32, L2) built with `parallel_insert` on every core.
pub(crate) fn hnsw_rs(set: &DataSet<'_>, base: &Flat, settings: &Settings, table: &mut Table) {
    let p = settings.index;
    let index = format!("hnsw_rs 0.3 f32 ({})", graph_settings(settings));
    let before = rss();
    let t0 = Instant::now();
    let hnsw = Hnsw::<f32, DistL2>::new(p.connectivity, base.len(), 16, p.expansion_add, DistL2 {});
    let rows: Vec<(&[f32], usize)> = (0..base.len()).map(|i| (base.row(i), i)).collect();
    hnsw.parallel_insert_slice(&rows);
    library_built(set, &index, settings, table, before, t0.elapsed());
    let prepare = |ef| {
        let f32s = |q: &Vec<f64>| q.iter().map(|a| *a as f32).collect::<Vec<f32>>();
        set.queries.iter().map(|q| (f32s(q), ef)).collect()
    };
    let search = |(q, ef): &(Vec<f32>, usize)| hnsw.search(q, settings.k, *ef);
    let ids = |hits: Vec<Neighbour>| hits.iter().map(|h| h.d_id as u32).collect();
    sweep(set, &index, settings, table, prepare, search, ids);
}

/// usearch alone (its native `f32` L2 kernel, the graph settings HVS
/// uses), built on every core: what HVS's index costs without HVS around
/// it. A search asks for `ef` results (usearch's ef is the larger of its
/// setting, 1 here, and the count), as HVS's searches do, and keeps `k`.
pub(crate) fn usearch(set: &DataSet<'_>, base: &Flat, settings: &Settings, table: &mut Table) {
    use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
    let p = settings.index;
    let index = format!("usearch 2.26 f32 alone ({})", graph_settings(settings));
    let before = rss();
    let t0 = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let graph = Index::new(&IndexOptions {
        dimensions: base.dim,
        metric: MetricKind::L2sq,
        quantization: ScalarKind::F32,
        connectivity: p.connectivity,
        expansion_add: p.expansion_add,
        expansion_search: 1,
        multi: false,
    })
    .unwrap();
    graph
        .reserve_capacity_and_threads(base.len(), threads)
        .unwrap();
    let rows: Vec<usize> = (0..base.len()).collect();
    std::thread::scope(|s| {
        for part in rows.chunks(rows.len().div_ceil(threads)) {
            let graph = &graph;
            s.spawn(move || {
                for &i in part {
                    graph.add(i as u64, base.row(i)).unwrap();
                }
            });
        }
    });
    library_built(set, &index, settings, table, before, t0.elapsed());
    let prepare = |ef: usize| {
        let f32s = |q: &Vec<f64>| q.iter().map(|a| *a as f32).collect::<Vec<f32>>();
        set.queries
            .iter()
            .map(|q| (f32s(q), ef.max(settings.k)))
            .collect()
    };
    let search = |(q, ef): &(Vec<f32>, usize)| graph.search(q, *ef).unwrap();
    let ids = |found: usearch::ffi::Matches| {
        found
            .keys
            .iter()
            .take(settings.k)
            .map(|k| *k as u32)
            .collect()
    };
    sweep(set, &index, settings, table, prepare, search, ids);
}
