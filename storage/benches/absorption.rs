//! Absorption: how long a vector written during a sustained stream into one
//! H^12 namespace waits in the exact fresh buffer before the indexer has
//! merged it into the graph (issue 15: 50,000 vectors/s in the graph within
//! 1 s at p99), and what searches cost meanwhile.
//!
//! `cargo bench -p hvs-storage --bench absorption`; docs/BENCHMARKS.md
//! ("Absorption") has the recorded run. Output is Markdown; progress goes
//! to stderr.
//!
//! The store is a redb file in a temporary folder at `buffered`, the
//! durability `hvs serve` uses by default, with the default checkpoint
//! interval. One namespace of H^12 is pre-filled with taxonomy points
//! (`large/data.rs`, shuffled) and `flush_index`ed. Then, for each rate:
//! 1. a few seconds of back-to-back k=10 searches with nothing else running
//!    (the idle figure, on the graph as it is then);
//! 2. one writer thread calls `batch_store_vectors` every 10 ms with the
//!    rate's share of vectors, each batch due at `start + i × 10 ms` (a late
//!    batch goes at once, so lateness does not accumulate; a writer still
//!    behind when the stream's time is up stops there, and the achieved
//!    rate says so), and records when each write returned (from then on
//!    the vector is searchable) and how long it took;
//!    meanwhile a searcher runs the same searches back to back and a poller
//!    reads `Store::get_stats` every 5 ms;
//! 3. after the stream, the poller keeps going until the fresh buffer is
//!    empty or the drain limit passes (then `flush_index` empties it, timed,
//!    before the next rate).
//!
//! The indexer merges the fresh buffer oldest first and drops merged keys
//! from its front, so with `vectors - fresh` vectors merged, every vector
//! written before the first `vectors - fresh` of them is in the graph.
//! `get_stats` reads `vectors` before `fresh`, so that count can only be
//! low: the times are upper bounds. A batch's time to graph is the end of
//! the first poll that saw it merged minus the moment its write returned.
//!
//! CPU figures cover the stream and its drain, from `/proc`: "CPU /
//! vector" is this process's CPU less the searcher's and the poller's
//! (the writes, the store's writer and the indexer), divided by the
//! vectors streamed; "indexer" is the `hvs-indexer` thread alone; "other
//! processes" is what `/proc/stat` counts busy beyond this process, since
//! the machine may be shared.
//!
//! Environment: `HVS_ABSORB_BASE` (pre-filled vectors, default 200,000),
//! `HVS_ABSORB_RATES` (vectors/s, default `10000,25000,50000`),
//! `HVS_ABSORB_SECS` (stream length, default 20), `HVS_ABSORB_DRAIN_SECS`
//! (how long to wait for the buffer to empty after a stream, default 120),
//! `HVS_ABSORB_SEARCH` (`0`: no searches during the streams),
//! `HVS_ABSORB_DATA` (`spread`: exp0 of N(0, I) points instead of the
//! taxonomy, for the queries too; a fifth of such a graph's nodes need
//! their check's re-insert, where the taxonomy's seldom do).

#![allow(missing_docs)]

#[path = "large/data.rs"]
#[allow(dead_code)]
mod data;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hvs_geometry::Manifold;
use hvs_storage::{
    Durability, GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const NS: &str = "absorb";
/// How often the writer sends a batch.
const TICK: Duration = Duration::from_millis(10);
/// How often the poller reads the namespace's counts.
const POLL: Duration = Duration::from_millis(5);
/// Back-to-back searches with nothing else running, before each stream.
const IDLE_SEARCH: Duration = Duration::from_secs(3);
/// Distinct search points, cycled.
const QUERIES: usize = 1_000;
/// `sysconf(_SC_CLK_TCK)` on Linux: the unit of `/proc/*/stat` times.
const CLK_TCK: f64 = 100.0;

/// A number from the environment; a value that is not one stops the run.
fn env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number")),
        Err(_) => default,
    }
}

fn progress(started: Instant, what: &str) {
    eprintln!("[{:7.1} s] {what}", started.elapsed().as_secs_f64());
}

/// User plus system CPU seconds from a `/proc/.../stat` file.
fn cpu_secs(stat: impl AsRef<Path>) -> f64 {
    let Ok(s) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) start at
    // field 3; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / CLK_TCK
}

/// CPU seconds every core of the machine has been busy, from `/proc/stat`.
fn machine_busy_secs() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    // cpu user nice system idle iowait irq softirq steal ...
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let field = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (field(0) + field(1) + field(2) + field(5) + field(6) + field(7)) / CLK_TCK
}

/// The `/proc/self/task/<tid>/stat` of the thread named `name`.
fn thread_stat(name: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| t.path().join("stat"))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(secs: f64) -> String {
    if secs.is_infinite() {
        "not merged".into()
    } else if secs < 0.01 {
        format!("{:.1} ms", secs * 1e3)
    } else if secs < 1.0 {
        format!("{:.0} ms", secs * 1e3)
    } else {
        format!("{secs:.1} s")
    }
}

/// One reading of the namespace's counts.
#[derive(Clone, Copy)]
struct Poll {
    at: Instant,
    merged: usize,
    fresh: usize,
}

fn poll(store: &Store) -> Poll {
    let s = store.get_stats().expect("stats");
    let n = &s.namespaces[NS];
    Poll {
        at: Instant::now(),
        merged: n.vectors - n.fresh,
        fresh: n.fresh,
    }
}

/// Runs the searches back to back until `stop`; each one's seconds, and
/// this thread's CPU seconds.
fn search_loop(store: &Store, queries: &[Vec<f64>], stop: &AtomicBool) -> (Vec<f64>, f64) {
    let cpu0 = cpu_secs("/proc/thread-self/stat");
    let mut lat = Vec::new();
    for q in queries.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let query = SearchQuery::new(NS, q.clone(), 10);
        let t = Instant::now();
        let hits = store.semantic_search(&query).expect("search");
        lat.push(t.elapsed().as_secs_f64());
        assert_eq!(hits.len(), 10);
    }
    (lat, cpu_secs("/proc/thread-self/stat") - cpu0)
}

/// Reads the counts every [`POLL`] until `stop`, then until the fresh
/// buffer is empty or `drain` has passed.
fn poll_loop(store: &Store, stop: &AtomicBool, drain: Duration) -> (Vec<Poll>, f64) {
    let cpu0 = cpu_secs("/proc/thread-self/stat");
    let mut polls = Vec::new();
    let mut next = Instant::now();
    let mut stopped: Option<Instant> = None;
    loop {
        let p = poll(store);
        polls.push(p);
        match stopped {
            None if stop.load(Ordering::Acquire) => stopped = Some(p.at),
            Some(s) if p.fresh == 0 || p.at - s >= drain => break,
            _ => {}
        }
        // A poll delayed by a busy machine is not made up for by a burst.
        next = (next + POLL).max(Instant::now());
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    (polls, cpu_secs("/proc/thread-self/stat") - cpu0)
}

/// What one stream measured.
struct Stream {
    rate: usize,
    secs: f64,
    sent: usize,
    achieved: f64,
    /// Each batch's time to graph (infinite: not merged before the poller stopped).
    to_graph: Vec<f64>,
    /// How long each batch's write took.
    writes: Vec<f64>,
    fresh_half: usize,
    fresh_end: usize,
    fresh_peak: usize,
    /// Seconds from the last write to an empty buffer (`None`: not in the limit).
    drained: Option<f64>,
    flush_after: Option<f64>,
    /// Longest time the merged count stood still with vectors waiting.
    longest_stall: f64,
    cpu_per_vector_us: f64,
    indexer_share: f64,
    /// Cores other processes kept busy meanwhile, on average.
    others_cores: f64,
    indexer_per_vector_us: f64,
    idle_search: Vec<f64>,
    busy_search: Vec<f64>,
}

/// The batch sizes of one stream: `rate × TICK` each, rounded so that they
/// add up to exactly `rate × secs`.
fn batch_sizes(rate: usize, secs: usize) -> Vec<usize> {
    let ticks = secs * 1_000 / TICK.as_millis() as usize;
    let per_tick = rate as f64 * TICK.as_secs_f64();
    (0..ticks)
        .map(|i| {
            ((i + 1) as f64 * per_tick).round() as usize - (i as f64 * per_tick).round() as usize
        })
        .collect()
}

/// One batch the writer sent.
struct Sent {
    /// When its write returned.
    at: Instant,
    /// How long the write took.
    took: f64,
}

/// Writes `points` in `sizes` batches paced by [`TICK`] until the last one
/// or the stream's end (`sizes` covers it at the target rate): a writer
/// that falls behind sends fewer, so a run lasts as long at any rate.
fn write_loop(store: &Store, points: &[Vec<f64>], sizes: &[usize]) -> Vec<Sent> {
    let start = Instant::now();
    let end = start + TICK * sizes.len() as u32;
    let mut sent = Vec::with_capacity(sizes.len());
    let mut from = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let due = start + TICK * i as u32;
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(due.saturating_duration_since(now));
        let batch = points[from..from + n]
            .iter()
            .map(|p| NewVector::new(NS, p.clone()))
            .collect();
        let t = Instant::now();
        store.batch_store_vectors(batch).expect("write");
        let at = Instant::now();
        sent.push(Sent {
            at,
            took: (at - t).as_secs_f64(),
        });
        from += n;
    }
    sent
}

/// Each batch's time to graph: the first poll that saw every vector up to
/// the batch's last merged (`base` were merged or waiting before it).
fn times_to_graph(base: usize, sizes: &[usize], sent: &[Sent], polls: &[Poll]) -> Vec<f64> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut upto = base;
    let mut p = 0;
    for (n, t) in sizes.iter().zip(sent) {
        upto += n;
        while p < polls.len() && polls[p].merged < upto {
            p += 1;
        }
        out.push(match polls.get(p) {
            Some(q) => q.at.saturating_duration_since(t.at).as_secs_f64(),
            None => f64::INFINITY,
        });
    }
    out
}

fn longest_stall(polls: &[Poll]) -> f64 {
    let mut longest = 0.0f64;
    let mut since: Option<&Poll> = None;
    for p in polls {
        match since {
            Some(s) if p.merged == s.merged && p.fresh > 0 => {
                longest = longest.max((p.at - s.at).as_secs_f64());
            }
            _ => since = Some(p),
        }
    }
    longest
}

struct Setup<'a> {
    store: &'a Store,
    queries: &'a [Vec<f64>],
    secs: usize,
    drain: Duration,
    search: bool,
    started: Instant,
}

fn idle_searches(set: &Setup<'_>) -> Vec<f64> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let h = std::thread::Builder::new()
            .name("absorb-search".into())
            .spawn_scoped(sc, || search_loop(set.store, set.queries, &stop))
            .expect("spawn");
        std::thread::sleep(IDLE_SEARCH);
        stop.store(true, Ordering::Relaxed);
        h.join().expect("searcher").0
    })
}

fn stream(set: &Setup<'_>, rate: usize, points: &[Vec<f64>]) -> Stream {
    let store = set.store;
    let idle_search = idle_searches(set);
    let sizes = batch_sizes(rate, set.secs);
    let before = poll(store);
    assert_eq!(before.fresh, 0, "the buffer is empty before a stream");
    let indexer = thread_stat("hvs-indexer");
    let cpu0 = cpu_secs("/proc/self/stat");
    let machine0 = machine_busy_secs();
    let idx0 = indexer.as_ref().map_or(0.0, cpu_secs);
    let t0 = Instant::now();
    let stop_search = AtomicBool::new(false);
    let stop_poll = AtomicBool::new(false);
    let (sent, (polls, poll_cpu), (busy_search, search_cpu)) = std::thread::scope(|sc| {
        let poller = std::thread::Builder::new()
            .name("absorb-poll".into())
            .spawn_scoped(sc, || poll_loop(store, &stop_poll, set.drain))
            .expect("spawn");
        let searcher = std::thread::Builder::new()
            .name("absorb-search".into())
            .spawn_scoped(sc, || {
                if set.search {
                    search_loop(store, set.queries, &stop_search)
                } else {
                    (Vec::new(), 0.0)
                }
            })
            .expect("spawn");
        let sent = std::thread::Builder::new()
            .name("absorb-writer".into())
            .spawn_scoped(sc, || write_loop(store, points, &sizes))
            .expect("spawn")
            .join()
            .expect("writer");
        stop_search.store(true, Ordering::Relaxed);
        stop_poll.store(true, Ordering::Release);
        let searched = searcher.join().expect("searcher");
        (sent, poller.join().expect("poller"), searched)
    });
    let end = polls.last().map_or(t0, |p| p.at);
    let wall = (end - t0).as_secs_f64();
    let own = cpu_secs("/proc/self/stat") - cpu0;
    let others = (machine_busy_secs() - machine0 - own).max(0.0);
    let cpu = own - poll_cpu - search_cpu;
    let idx = indexer.as_ref().map_or(0.0, cpu_secs) - idx0;
    let last_sent = sent.last().expect("a batch").at;
    let during: Vec<&Poll> = polls.iter().filter(|p| p.at <= last_sent).collect();
    let fresh_at = |t: Instant| {
        during
            .iter()
            .rev()
            .find(|p| p.at <= t)
            .map_or(0, |p| p.fresh)
    };
    let drained = polls
        .last()
        .filter(|p| p.fresh == 0)
        .map(|p| p.at.saturating_duration_since(last_sent).as_secs_f64());
    let flush_after = drained.is_none().then(|| {
        progress(set.started, "  not drained: flush_index");
        let t = Instant::now();
        store.flush_index().expect("flush");
        t.elapsed().as_secs_f64()
    });
    let sizes = &sizes[..sent.len()];
    let sent_n: usize = sizes.iter().sum();
    Stream {
        rate,
        secs: set.secs as f64,
        sent: sent_n,
        achieved: sent_n as f64 / (last_sent - t0).as_secs_f64(),
        to_graph: times_to_graph(before.merged, sizes, &sent, &polls),
        writes: sent.iter().map(|s| s.took).collect(),
        fresh_half: fresh_at(t0 + (last_sent - t0) / 2),
        fresh_end: fresh_at(last_sent),
        fresh_peak: polls.iter().map(|p| p.fresh).max().unwrap_or(0),
        drained,
        flush_after,
        longest_stall: longest_stall(&polls),
        cpu_per_vector_us: cpu / sent_n as f64 * 1e6,
        indexer_share: idx / wall,
        others_cores: others / wall,
        indexer_per_vector_us: idx / sent_n as f64 * 1e6,
        idle_search,
        busy_search,
    }
}

fn print_table(runs: &mut [Stream]) {
    println!(
        "\n| target rate | achieved | vectors | write p50 / p99 | to graph p50 | p99 | max | fresh at half / end of stream (peak) | drain after stream | longest merge stall | indexer thread busy | indexer CPU / vector | CPU / vector | search p50 / p99 idle | search p50 / p99 during | other processes' CPU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs.iter_mut() {
        let drain = match (r.drained, r.flush_after) {
            (Some(d), _) => ms(d),
            (None, Some(f)) => format!("not in limit (flush_index {f:.1} s)"),
            (None, None) => "—".into(),
        };
        let search = |v: &mut Vec<f64>| {
            if v.is_empty() {
                "—".into()
            } else {
                format!("{:.0} / {:.0} µs", pct(v, 0.5) * 1e6, pct(v, 0.99) * 1e6)
            }
        };
        println!(
            "| {}/s for {:.0} s | {:.0}/s | {} | {} / {} | {} | {} | {} | {} / {} ({}) | {drain} | {} | {:.0} % | {:.1} µs | {:.1} µs | {} | {} | {:.2} cores |",
            r.rate,
            r.secs,
            r.achieved,
            r.sent,
            ms(pct(&mut r.writes, 0.5)),
            ms(pct(&mut r.writes, 0.99)),
            ms(pct(&mut r.to_graph, 0.5)),
            ms(pct(&mut r.to_graph, 0.99)),
            ms(pct(&mut r.to_graph, 1.0)),
            r.fresh_half,
            r.fresh_end,
            r.fresh_peak,
            ms(r.longest_stall),
            r.indexer_share * 100.0,
            r.indexer_per_vector_us,
            r.cpu_per_vector_us,
            search(&mut r.idle_search),
            search(&mut r.busy_search),
            r.others_cores,
        );
    }
}

fn main() {
    let started = Instant::now();
    let base = env("HVS_ABSORB_BASE", 200_000);
    let secs = env("HVS_ABSORB_SECS", 20);
    let drain = Duration::from_secs(env("HVS_ABSORB_DRAIN_SECS", 120) as u64);
    let search = std::env::var("HVS_ABSORB_SEARCH").map_or(true, |s| s != "0");
    let rates: Vec<usize> = std::env::var("HVS_ABSORB_RATES")
        .unwrap_or_else(|_| "10000,25000,50000".into())
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .expect("HVS_ABSORB_RATES: a list of numbers")
        })
        .collect();
    let streamed: usize = rates
        .iter()
        .map(|r| batch_sizes(*r, secs).iter().sum::<usize>())
        .sum();

    let spread = std::env::var("HVS_ABSORB_DATA").is_ok_and(|d| d == "spread");
    let kind = if spread { "spread" } else { "taxonomy" };

    let mut rng = StdRng::seed_from_u64(15);
    let h = data::h12();
    let (points, queries): (Vec<Vec<f64>>, Vec<Vec<f64>>) = if spread {
        let points = (0..base + streamed)
            .map(|_| h.random_point(&mut rng))
            .collect();
        let queries = (0..QUERIES).map(|_| h.random_point(&mut rng)).collect();
        (points, queries)
    } else {
        let mut points = data::taxonomy(&mut rng, base + streamed);
        points.shuffle(&mut rng);
        let queries = (0..QUERIES)
            .map(|i| data::jitter(&h, &mut rng, &points[(i * 7919) % points.len()], 0.3))
            .collect();
        (points, queries)
    };
    progress(started, &format!("{} {kind} points", points.len()));

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StoreConfig::file(
        dir.path().join("absorb.redb"),
        Durability::Buffered,
    ))
    .expect("open");
    store
        .create_namespace(SpaceConfig::new(
            NS,
            GeometrySpec::Hyperboloid {
                dim: 12,
                curvature: 1.0,
            },
        ))
        .expect("namespace");
    let t = Instant::now();
    for chunk in points[..base].chunks(10_000) {
        store
            .batch_store_vectors(
                chunk
                    .iter()
                    .map(|p| NewVector::new(NS, p.clone()))
                    .collect(),
            )
            .expect("prefill");
    }
    store.flush_index().expect("flush");
    let prefill = t.elapsed().as_secs_f64();
    progress(started, &format!("pre-filled {base} in {prefill:.1} s"));

    let t = Instant::now();
    let calls = 1_000;
    for _ in 0..calls {
        std::hint::black_box(poll(&store));
    }
    let stats_us = t.elapsed().as_secs_f64() / calls as f64 * 1e6;

    println!(
        "# hvs-storage absorption bench: one H^12 namespace pre-filled with {base} {kind} vectors ({prefill:.1} s with flush_index), buffered redb file store, streams of {secs} s at {} vectors/s in batches every {} ms, k = 10 searches at the default ef {}; get_stats {stats_us:.1} µs a call, polled every {} ms",
        rates
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        TICK.as_millis(),
        if search {
            "during each stream"
        } else {
            "(none during the streams)"
        },
        POLL.as_millis(),
    );
    let set = Setup {
        store: &store,
        queries: &queries,
        secs,
        drain,
        search,
        started,
    };
    let mut runs = Vec::new();
    let mut at = base;
    for rate in rates {
        progress(started, &format!("stream at {rate}/s"));
        let n: usize = batch_sizes(rate, secs).iter().sum();
        let r = stream(&set, rate, &points[at..at + n]);
        at += r.sent;
        progress(
            started,
            &format!(
                "  achieved {:.0}/s, fresh at end {}, drained {:?}",
                r.achieved, r.fresh_end, r.drained
            ),
        );
        runs.push(r);
    }
    print_table(&mut runs);
    let s = store.get_stats().expect("stats");
    let n = &s.namespaces[NS];
    println!(
        "\nAt the end: {} vectors, {} in the graph, {} unreachable ({} in overflow graphs, {} scanned exactly); {:.0} s in all.",
        n.vectors,
        n.in_graph,
        n.unreachable,
        n.in_overflow,
        n.scanned_exactly,
        started.elapsed().as_secs_f64()
    );
    // Closing saves the graph dump, which is not part of the measurement.
    std::mem::forget(store);
}
