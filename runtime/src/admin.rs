//! The admin port: `GET /health` (JSON) and `GET /metrics` (Prometheus
//! text), served by tiny_http on a thread of its own so a slow scrape never
//! touches the model connections.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hvs_storage::StorageError;

use crate::Runtime;
use crate::metrics::{Metrics, Snapshot};

/// What the admin pages read.
pub(crate) struct Sources {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) metrics: Metrics,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) listen: SocketAddr,
    pub(crate) started: Instant,
    pub(crate) auth: bool,
}

/// The running admin server. It answers from the moment it is bound:
/// `starting` (HTTP 503) until [`Admin::serve`] hands it the runtime.
pub(crate) struct Admin {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    sources: Arc<OnceLock<Sources>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Admin {
    /// Binds `addr` and answers at once; `listen` is the model port (bound
    /// before), `started` when the server began.
    pub(crate) fn bind(
        addr: SocketAddr,
        listen: SocketAddr,
        started: Instant,
    ) -> std::io::Result<Admin> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("admin server is not on TCP"))?;
        let server = Arc::new(server);
        let s = server.clone();
        let sources = Arc::new(OnceLock::<Sources>::new());
        let from = sources.clone();
        let thread = std::thread::Builder::new()
            .name("hvs-admin".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    match from.get() {
                        Some(sources) => answer(sources, req),
                        None => starting(req, listen, started),
                    }
                }
            })?;
        Ok(Admin {
            server,
            addr,
            sources,
            thread: Some(thread),
        })
    }

    /// From now on the pages read `sources` (the runtime is open).
    pub(crate) fn serve(&self, sources: Sources) {
        let _ = self.sources.set(sources);
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Admin {
    /// Stops serving and waits for the thread (it holds the runtime).
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the admin port answers while the store is being opened: `/health`
/// says `starting` with HTTP 503 (not ready), `/metrics` a 503 too.
fn starting(req: tiny_http::Request, listen: SocketAddr, started: Instant) {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let response = match (req.method(), path.as_str()) {
        (tiny_http::Method::Get, "/health") => {
            let body = serde_json::json!({
                "status": "starting",
                "reason": STARTING,
                "version": env!("CARGO_PKG_VERSION"),
                "protocol_versions": crate::protocol::PROTOCOL_VERSIONS,
                "listen": listen.to_string(),
                "uptime_seconds": started.elapsed().as_secs(),
            });
            tiny_http::Response::from_string(body.to_string())
                .with_header(header("Content-Type", "application/json"))
                .with_status_code(503)
        }
        (tiny_http::Method::Get, "/metrics") => {
            tiny_http::Response::from_string(format!("{STARTING}\n")).with_status_code(503)
        }
        _ => tiny_http::Response::from_string("not found: try /health or /metrics\n")
            .with_status_code(404),
    };
    let _ = req.respond(response);
}

/// Why a server that is starting does not serve yet.
const STARTING: &str = "the store is being opened: connections are accepted, and each hello is answered once it is open";

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("the admin pages' headers are ASCII constants")
}

fn answer(s: &Sources, req: tiny_http::Request) {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let response = match (req.method(), path.as_str()) {
        (tiny_http::Method::Get, "/health") => {
            let body = health(s).to_string();
            tiny_http::Response::from_string(body)
                .with_header(header("Content-Type", "application/json"))
        }
        (tiny_http::Method::Get, "/metrics") => {
            let body = s.metrics.render(&snapshot(s));
            tiny_http::Response::from_string(body).with_header(header(
                "Content-Type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
        }
        _ => tiny_http::Response::from_string("not found: try /health or /metrics\n")
            .with_status_code(404),
    };
    let _ = req.respond(response);
}

fn health(s: &Sources) -> serde_json::Value {
    let models = s.runtime.models();
    let connected = models.iter().filter(|(_, c)| *c).count();
    let store = s.runtime.storage();
    let stats = store.get_stats();
    let (namespaces, vectors) = match &stats {
        Ok(st) => (
            st.namespaces.len(),
            st.namespaces.values().map(|n| n.vectors).sum::<usize>(),
        ),
        Err(_) => (0, 0),
    };
    let refusal = store.write_refusal();
    // What is wrong, worst first: storage that cannot be read, then
    // storage that refuses writes.
    let reason = match (&stats, &refusal) {
        (Err(e), _) => Some(format!("storage cannot be read: {e}")),
        (Ok(_), Some(r)) => Some(StorageError::WriteFailed(r.clone()).to_string()),
        (Ok(_), None) => None,
    };
    serde_json::json!({
        "status": if reason.is_none() { "ok" } else { "degraded" },
        "reason": reason,
        "store_writable": refusal.is_none(),
        "version": env!("CARGO_PKG_VERSION"),
        "protocol_versions": crate::protocol::PROTOCOL_VERSIONS,
        "listen": s.listen.to_string(),
        "auth": s.auth,
        "durability": format!("{:?}", s.runtime.storage().durability()).to_lowercase(),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "connections": s.metrics.connections(),
        "models": models.len(),
        "models_connected": connected,
        "namespaces": namespaces,
        "vectors": vectors,
        "cluster": cluster(s),
    })
}

/// The change feed's publishing and each sync job (`null` for an instance
/// not in a cluster).
fn cluster(s: &Sources) -> serde_json::Value {
    let Ok(feed) = s.runtime.feed_status() else {
        return serde_json::Value::Null;
    };
    let jobs = s.handle.block_on(s.runtime.sync_list()).unwrap_or_default();
    let jobs: Vec<_> = jobs
        .iter()
        .map(|j| {
            serde_json::json!({
                "name": j.spec.name,
                "source": j.spec.source,
                "state": j.state,
                "position": j.position,
                "pending": j.pending,
                "lag_ms": j.lag_ms,
                "applied": j.applied,
                "conflicts": j.conflicts.total(),
                "last_error": j.last_error,
            })
        })
        .collect();
    let mut group = serde_json::json!(s.runtime.group_status());
    if let (Some(g), Some(reads)) = (group.as_object_mut(), s.runtime.read_repair_status()) {
        g.insert("read_repairs".into(), reads.read_repairs.into());
        g.insert(
            "read_repair_unanswered".into(),
            reads.read_repair_unanswered.into(),
        );
    }
    serde_json::json!({ "feed": feed, "sync_jobs": jobs, "group": group })
}

fn snapshot(s: &Sources) -> Snapshot {
    let mut snap = Snapshot {
        store_refuses_writes: s.runtime.storage().write_refusal().is_some(),
        ..Snapshot::default()
    };
    if let Ok(st) = s.runtime.storage().get_stats() {
        snap.commits = st.commits;
        snap.commit_requests = st.commit_requests;
        snap.commit_micros = st.commit_micros;
        for (n, ns) in &st.namespaces {
            snap.vectors.push((n.clone(), ns.vectors as i64));
            snap.fresh.push((n.clone(), ns.fresh as i64));
        }
    }
    if let Ok(feed) = s.runtime.feed_status() {
        snap.feed = Some((feed.published, feed.lag));
        let jobs = s.handle.block_on(s.runtime.sync_list()).unwrap_or_default();
        for j in jobs {
            let name = j.spec.name.clone();
            snap.sync_pending.push((name.clone(), j.pending as i64));
            snap.sync_lag_ms.push((name.clone(), j.lag_ms as i64));
            snap.sync_applied.push((name.clone(), j.applied as i64));
            snap.sync_conflicts.push((name, j.conflicts.total() as i64));
        }
    }
    snap.group = s.runtime.group_status();
    snap.read_repairs = s.runtime.read_repair_status();
    let models = s.runtime.models();
    snap.models_connected = models.iter().filter(|(_, c)| *c).count() as i64;
    for (id, connected) in models {
        if !connected {
            continue;
        }
        let Ok(m) = s.runtime.model(&id) else {
            continue;
        };
        if let Ok((mb, _)) = s.handle.block_on(m.mailbox()) {
            snap.pending.push((id.clone(), mb.pending as i64));
            snap.in_flight.push((id, mb.in_flight as i64));
        }
    }
    snap
}
