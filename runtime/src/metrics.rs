//! The server's metrics, in Prometheus' text format (prometheus-client).
//!
//! Counters and histograms the server updates as it works live here;
//! figures storage and the actors already keep (vectors, fresh buffer,
//! commits, mailbox depths) are read when `/metrics` is scraped.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The live metrics; cheap to clone (every field is shared).
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Gauge,
    connections_opened: Counter,
    connections_refused: Counter,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    messages_in: Counter,
    messages_out: Counter,
    search_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                connections: Gauge::default(),
                connections_opened: Counter::default(),
                connections_refused: Counter::default(),
                requests: Family::default(),
                errors: Family::default(),
                messages_in: Counter::default(),
                messages_out: Counter::default(),
                // 50 µs … ~1.6 s.
                search_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
            }),
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.inner.connections.inc();
        self.inner.connections_opened.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.inner.connections.dec();
    }

    pub(crate) fn connection_refused(&self) {
        self.inner.connections_refused.inc();
    }

    pub(crate) fn request(&self, op: &str) {
        self.inner
            .requests
            .get_or_create(&vec![("op".into(), op.into())])
            .inc();
    }

    pub(crate) fn error(&self, code: &str) {
        self.inner
            .errors
            .get_or_create(&vec![("code".into(), code.into())])
            .inc();
    }

    pub(crate) fn sent(&self, n: u64) {
        self.inner.messages_in.inc_by(n);
    }

    pub(crate) fn delivered(&self, n: u64) {
        self.inner.messages_out.inc_by(n);
    }

    pub(crate) fn search(&self, took: Duration) {
        self.inner.search_seconds.observe(took.as_secs_f64());
    }

    /// Open connections now.
    pub(crate) fn connections(&self) -> i64 {
        self.inner.connections.get()
    }

    /// The text exposition: the live metrics plus `extra`, figures read at
    /// scrape time.
    pub(crate) fn render(&self, extra: &Snapshot) -> String {
        let mut r = Registry::with_prefix("hvs");
        let i = &self.inner;
        r.register(
            "connections",
            "Open model connections",
            i.connections.clone(),
        );
        r.register(
            "connections_opened",
            "Connections accepted since start",
            i.connections_opened.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused at the connection limit",
            i.connections_refused.clone(),
        );
        r.register(
            "requests",
            "Requests answered, by operation",
            i.requests.clone(),
        );
        r.register("errors", "Error answers, by code", i.errors.clone());
        r.register(
            "messages_in",
            "Messages accepted from clients (send, send_batch, broadcast recipients)",
            i.messages_in.clone(),
        );
        r.register(
            "messages_out",
            "Messages handed to clients (pushed or received)",
            i.messages_out.clone(),
        );
        r.register(
            "search_seconds",
            "Search latency seen by the server",
            i.search_seconds.clone(),
        );
        let counter = |v: u64| {
            let c: Counter = Counter::default();
            c.inc_by(v);
            c
        };
        r.register(
            "commits",
            "Storage transactions committed (mean group size: rate of hvs_commit_requests_total over this)",
            counter(extra.commits),
        );
        r.register(
            "commit_requests",
            "Write requests the commits carried",
            counter(extra.commit_requests),
        );
        let commit_seconds: Counter<f64, std::sync::atomic::AtomicU64> = Counter::default();
        commit_seconds.inc_by(extra.commit_micros as f64 / 1e6);
        r.register(
            "commit_seconds",
            "Time spent applying and committing",
            commit_seconds,
        );
        let gauge_family = |rows: &[(String, i64)], label: &str| {
            let f: Family<Labels, Gauge> = Family::default();
            for (k, v) in rows {
                f.get_or_create(&vec![(label.to_string(), k.clone())])
                    .set(*v);
            }
            f
        };
        r.register(
            "vectors",
            "Vectors stored, by namespace",
            gauge_family(&extra.vectors, "namespace"),
        );
        r.register(
            "index_fresh",
            "Vectors in the exact fresh buffer (not yet in the graph), by namespace",
            gauge_family(&extra.fresh, "namespace"),
        );
        r.register(
            "mailbox_pending",
            "Messages waiting to be received, by model",
            gauge_family(&extra.pending, "model"),
        );
        r.register(
            "mailbox_in_flight",
            "Messages received and not acked yet, by model",
            gauge_family(&extra.in_flight, "model"),
        );
        let models = Gauge::<i64>::default();
        models.set(extra.models_connected);
        r.register("models_connected", "Models connected now", models);
        let writable = Gauge::<i64>::default();
        writable.set(i64::from(!extra.store_refuses_writes));
        r.register(
            "store_writable",
            "1 while the store takes writes, 0 while it refuses them after a disk fault (the reason is on /health)",
            writable,
        );
        if let Some((published, lag)) = extra.feed {
            let gauge = |v: u64| {
                let g = Gauge::<i64>::default();
                g.set(v as i64);
                g
            };
            r.register(
                "feed_published",
                "The last change of this instance's feed JetStream acknowledged",
                gauge(published),
            );
            r.register(
                "feed_lag",
                "Changes committed here and not yet acknowledged by JetStream",
                gauge(lag),
            );
            r.register(
                "sync_pending",
                "Changes of the source's stream a sync job has not applied yet, by job",
                gauge_family(&extra.sync_pending, "job"),
            );
            r.register(
                "sync_lag_ms",
                "Milliseconds from the source's publishing of a job's last applied change to its commit here, by job",
                gauge_family(&extra.sync_lag_ms, "job"),
            );
            r.register(
                "sync_applied",
                "Changes a sync job wrote here, by job",
                gauge_family(&extra.sync_applied, "job"),
            );
            r.register(
                "sync_conflicts",
                "Conflicts a sync job settled, by job",
                gauge_family(&extra.sync_conflicts, "job"),
            );
        }
        if let Some(g) = &extra.group {
            let gauge = |v: i64| {
                let g = Gauge::<i64>::default();
                g.set(v);
                g
            };
            let (primary, epoch) = match g.role {
                hvs_actors::Role::Primary { epoch } => (1, epoch as i64),
                _ => (0, 0),
            };
            r.register(
                "group_primary",
                "1 while this instance is its failover group's primary, else 0",
                gauge(primary),
            );
            r.register(
                "group_epoch",
                "The lease epoch (fencing token) this primary writes under, 0 when not primary",
                gauge(epoch),
            );
            r.register(
                "group_promotions",
                "Times this instance became its group's primary since it started",
                gauge(g.promotions as i64),
            );
            r.register(
                "group_lease_renew_failures",
                "Lease renewals that failed since it started",
                gauge(g.lease_renew_failures as i64),
            );
            r.register(
                "group_mirrored",
                "The last change of this instance's feed a mirror told it applied",
                gauge(g.mirrored as i64),
            );
            let reads = extra.read_repairs.unwrap_or_default();
            r.register(
                "read_repairs",
                "Vectors a read on this mirror repaired with the primary's version, since it started",
                gauge(reads.read_repairs as i64),
            );
            r.register(
                "read_repair_unanswered",
                "Reads on this mirror answered from its own copy because the primary did not answer in time, since it started",
                gauge(reads.read_repair_unanswered as i64),
            );
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

/// Figures read when `/metrics` is scraped.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    pub(crate) commits: u64,
    pub(crate) commit_requests: u64,
    pub(crate) commit_micros: u64,
    pub(crate) vectors: Vec<(String, i64)>,
    pub(crate) fresh: Vec<(String, i64)>,
    pub(crate) pending: Vec<(String, i64)>,
    pub(crate) in_flight: Vec<(String, i64)>,
    pub(crate) models_connected: i64,
    /// The store refuses writes after a disk fault.
    pub(crate) store_refuses_writes: bool,
    /// The feed's published position and lag, in a cluster.
    pub(crate) feed: Option<(u64, u64)>,
    pub(crate) sync_pending: Vec<(String, i64)>,
    pub(crate) sync_lag_ms: Vec<(String, i64)>,
    pub(crate) sync_applied: Vec<(String, i64)>,
    pub(crate) sync_conflicts: Vec<(String, i64)>,
    /// This instance's part in its failover group, if in one.
    pub(crate) group: Option<hvs_actors::GroupStatus>,
    /// Read repair's counters, in a group.
    pub(crate) read_repairs: Option<hvs_actors::ReadRepairStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_its_values() {
        let m = Metrics::new();
        m.connection_opened();
        m.request("send");
        m.sent(3);
        m.search(Duration::from_millis(2));
        let text = m.render(&Snapshot {
            commits: 2,
            commit_requests: 10,
            vectors: vec![("chat".into(), 5)],
            pending: vec![("alice".into(), 7)],
            store_refuses_writes: true,
            ..Snapshot::default()
        });
        for line in [
            "hvs_connections 1",
            "hvs_requests_total{op=\"send\"} 1",
            "hvs_messages_in_total 3",
            "hvs_search_seconds_count 1",
            "hvs_commits_total 2",
            "hvs_commit_requests_total 10",
            "hvs_vectors{namespace=\"chat\"} 5",
            "hvs_mailbox_pending{model=\"alice\"} 7",
            "hvs_store_writable 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
