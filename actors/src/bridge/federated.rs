//! Federated search over NATS: which instances live and what they offer
//! (a JetStream key-value bucket), the answering side (a subscription per
//! instance), and the asking side (scatter, gather until every instance
//! answered or the timeout, merge by the true distance).
//!
//! Every clustered instance writes its entry (capabilities, address) to
//! the bucket `hvs_instances` every [`ANNOUNCE_EVERY`]; the bucket keeps an
//! entry [`FORGET_AFTER`] past its last write, so an instance that stopped
//! is still asked (and shows up in `missing`) for that long, then
//! forgotten. Each instance answers `hvs.fed.<instance>.search` with the
//! exact `k` nearest of its namespace, coordinates included.

use std::time::Duration;

use futures_util::StreamExt;
use hvs_geometry::Manifold;
use hvs_storage::{SearchQuery, Store};
use hvs_types::{
    BridgeHit, BridgeHits, BridgeQuery, Filter, GeometrySpec, InstanceRefusal, Metadata,
};
use serde::{Deserialize, Serialize};

use super::{check_point, manifold, rank};
use crate::cluster::Cluster;
use crate::error::{ActorError, Result};
use crate::namespace::blocking;

/// The bucket of live instances.
const BUCKET: &str = "hvs_instances";
/// How often an instance writes its entry.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// How long an entry outlives its last write.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// The most hits one instance answers.
const MAX_K: usize = 10_000;

/// An instance's entry in the bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstanceEntry {
    instance: String,
    capabilities: Vec<String>,
    advertise: Option<String>,
}

/// The subject `instance` answers federated searches on.
fn search_subject(instance: &str) -> String {
    format!("hvs.fed.{instance}.search")
}

/// A federated search as it travels between instances (msgpack).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FedQuery {
    namespace: String,
    capability: String,
    vector: Vec<f64>,
    k: usize,
    filter: Option<Filter>,
}

/// An instance's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FedReply {
    /// The exact nearest of its namespace (`geometry: None`, no hits: it
    /// has no such namespace).
    Hits {
        geometry: Option<GeometrySpec>,
        hits: Vec<FedHit>,
    },
    /// It refused the query.
    Refused { code: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FedHit {
    id: String,
    vector: Vec<f64>,
    metadata: Metadata,
}

fn nats_fault(what: &str, e: impl std::fmt::Display) -> ActorError {
    ActorError::ClusterUnavailable(format!("{what}: {e}"))
}

/// Starts this instance's part: its entry in the bucket, kept fresh, and
/// the answering of federated searches.
pub(crate) fn start_federation(cluster: &Cluster) {
    cluster.arbiter().spawn(announce(cluster.clone()));
    cluster.arbiter().spawn(answer(cluster.clone()));
}

/// The instances' bucket, made if missing. Its stream is made here with
/// the settings `create_key_value` would use, because that call first
/// reads the account's info, which async-nats 0.51 cannot parse from
/// nats-server 2.9 (Debian's; it lacks `reserved_memory`).
async fn bucket(cluster: &Cluster) -> Result<async_nats::jetstream::kv::Store> {
    use async_nats::jetstream::stream;
    let js = cluster.jetstream();
    if let Ok(kv) = js.get_key_value(BUCKET).await {
        return Ok(kv);
    }
    let config = stream::Config {
        name: format!("KV_{BUCKET}"),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: FORGET_AFTER,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: cluster.config().replicas.max(1),
        ..Default::default()
    };
    let fault = |e: &dyn std::fmt::Display| nats_fault("the instances' bucket", e);
    js.get_or_create_stream(config)
        .await
        .map_err(|e| fault(&e))?;
    js.get_key_value(BUCKET).await.map_err(|e| fault(&e))
}

/// Writes this instance's entry every [`ANNOUNCE_EVERY`], for good.
async fn announce(cluster: Cluster) {
    let config = cluster.config();
    let entry = InstanceEntry {
        instance: config.instance.clone(),
        capabilities: config.capabilities.clone(),
        advertise: config.advertise.clone(),
    };
    let bytes = match serde_json::to_vec(&entry) {
        Ok(b) => b,
        Err(e) => return tracing::error!("instance entry: {e}"),
    };
    let mut kv = None;
    loop {
        if kv.is_none() {
            kv = bucket(&cluster)
                .await
                .map_err(|e| tracing::debug!("{e}"))
                .ok();
        }
        if let Some(store) = &kv
            && let Err(e) = store.put(&config.instance, bytes.clone().into()).await
        {
            tracing::debug!("announcing {} to {BUCKET}: {e}", config.instance);
        }
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
}

/// Answers federated searches sent to this instance, for good.
async fn answer(cluster: Cluster) {
    let subject = search_subject(cluster.instance());
    let serve = |c: Cluster, q: FedQuery| async move { serve(&c, q).await };
    crate::cluster::answer_requests(cluster, subject, "federated query", serve, |e| {
        refused("bad_request", e)
    })
    .await
}

fn refused(code: &str, message: String) -> FedReply {
    FedReply::Refused {
        code: code.into(),
        message,
    }
}

/// This instance's exact answer to `q`.
async fn serve(cluster: &Cluster, q: FedQuery) -> FedReply {
    if !cluster.config().capabilities.contains(&q.capability) {
        return refused(
            "bad_request",
            format!(
                "instance {:?} does not offer {:?}",
                cluster.instance(),
                q.capability
            ),
        );
    }
    let store = cluster.store().clone();
    match blocking(move || exact(&store, q)).await {
        Ok(reply) => reply,
        Err(e) => refused(e.code(), e.to_string()),
    }
}

fn exact(store: &Store, q: FedQuery) -> Result<FedReply> {
    let config = match store.namespace(&q.namespace) {
        Ok(c) => c,
        Err(hvs_storage::StorageError::NamespaceNotFound(_)) => {
            return Ok(FedReply::Hits {
                geometry: None,
                hits: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut search = SearchQuery::new(&q.namespace, q.vector, q.k.min(MAX_K));
    search.filter = q.filter;
    search.exact = true;
    let found = store.semantic_search(&search)?;
    let ids: Vec<_> = found.iter().map(|h| h.id).collect();
    let hits = store
        .batch_retrieve_vectors(&ids)?
        .into_iter()
        .flatten()
        .map(|r| FedHit {
            id: r.id.to_string(),
            vector: r.data.clone(),
            metadata: r.metadata.clone(),
        })
        .collect();
    Ok(FedReply::Hits {
        geometry: Some(config.geometry),
        hits,
    })
}

/// Every instance whose entry offers `capability`, sorted.
async fn instances_with(cluster: &Cluster, capability: &str) -> Result<Vec<String>> {
    let kv = bucket(cluster).await?;
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| nats_fault("the instances' bucket", e))?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| nats_fault("the instances' bucket", e))?;
        let Ok(Some(bytes)) = kv.get(&key).await else {
            continue;
        };
        if let Ok(entry) = serde_json::from_slice::<InstanceEntry>(&bytes)
            && entry.capabilities.iter().any(|c| c == capability)
        {
            out.push(entry.instance);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The asking side of a federated bridge.
pub(super) struct Ask {
    pub(super) namespace: String,
    pub(super) capability: String,
    pub(super) timeout: Duration,
}

impl Ask {
    /// Sends `query` to every instance with the capability, waits for
    /// their answers until the timeout, and merges them: every hit's
    /// distance to the query computed here on the namespace's manifold
    /// (this instance's namespace's, or else the first answer's in
    /// instance order), nearest `k` kept. An answer of another geometry is
    /// refused (`geometry_mismatch`); an instance that did not answer in
    /// time (or has no subscriber: stopped) is `missing`.
    pub(super) async fn search(&self, cluster: &Cluster, query: BridgeQuery) -> Result<BridgeHits> {
        let instances = instances_with(cluster, &self.capability).await?;
        let fed = FedQuery {
            namespace: self.namespace.clone(),
            capability: self.capability.clone(),
            vector: query.vector.clone(),
            k: query.k,
            filter: query.filter.clone(),
        };
        let bytes = rmp_serde::to_vec_named(&fed)
            .map_err(|e| ActorError::InvalidRequest(format!("federated query: {e}")))?;
        let asks = instances.into_iter().map(|instance| {
            let (client, bytes) = (cluster.nats().clone(), bytes.clone());
            async move {
                let asked = client.request(search_subject(&instance), bytes.into());
                let reply = match tokio::time::timeout(self.timeout, asked).await {
                    Ok(Ok(m)) => rmp_serde::from_slice::<FedReply>(&m.payload).ok(),
                    _ => None,
                };
                (instance, reply)
            }
        });
        let replies = futures_util::future::join_all(asks).await;
        let store = cluster.store().clone();
        let ns = self.namespace.clone();
        let local = blocking(move || Ok(store.namespace(&ns).ok().map(|c| c.geometry))).await?;
        merge(&self.namespace, local, replies, &query)
    }
}

/// Merges the instances' replies into one answer.
fn merge(
    namespace: &str,
    local: Option<GeometrySpec>,
    replies: Vec<(String, Option<FedReply>)>,
    query: &BridgeQuery,
) -> Result<BridgeHits> {
    let geometry = local.or_else(|| {
        replies.iter().find_map(|(_, r)| match r {
            Some(FedReply::Hits { geometry, .. }) => geometry.clone(),
            _ => None,
        })
    });
    let mut out = BridgeHits::default();
    let Some(geometry) = geometry else {
        // No instance holds the namespace: nothing to rank.
        for (instance, reply) in replies {
            match reply {
                Some(_) => out.answered.push(instance),
                None => out.missing.push(instance),
            }
        }
        return Ok(out);
    };
    let m = manifold(&geometry)?;
    check_point(&m, &query.vector)?;
    for (instance, reply) in replies {
        match reply {
            None => out.missing.push(instance),
            Some(FedReply::Refused { code, message }) => out.refused.push(InstanceRefusal {
                instance,
                code,
                message,
            }),
            Some(FedReply::Hits { geometry: g, hits }) => {
                if g.as_ref().is_some_and(|g| *g != geometry) {
                    out.refused.push(InstanceRefusal {
                        instance,
                        code: "geometry_mismatch".into(),
                        message: format!("namespace {namespace:?} has another manifold there"),
                    });
                    continue;
                }
                for h in hits {
                    let Ok(distance) = m.distance(&query.vector, &h.vector) else {
                        continue;
                    };
                    out.hits.push(BridgeHit {
                        id: h.id,
                        instance: instance.clone(),
                        namespace: namespace.to_string(),
                        distance,
                        vector: h.vector,
                        metadata: h.metadata,
                    });
                }
                out.answered.push(instance);
            }
        }
    }
    rank(&mut out.hits, query.k);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(points: &[(f64, f64)]) -> FedReply {
        FedReply::Hits {
            geometry: Some(GeometrySpec::Euclidean { dim: 2 }),
            hits: points
                .iter()
                .map(|&(x, y)| FedHit {
                    id: format!("{x},{y}"),
                    vector: vec![x, y],
                    metadata: Metadata::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn answers_merge_by_distance_and_silence_is_missing() {
        let query = BridgeQuery {
            vector: vec![0.0, 0.0],
            k: 3,
            filter: None,
        };
        let replies = vec![
            ("a".to_string(), Some(hits(&[(3.0, 0.0), (1.0, 0.0)]))),
            ("b".to_string(), Some(hits(&[(2.0, 0.0), (0.5, 0.0)]))),
            ("c".to_string(), None),
            (
                "d".to_string(),
                Some(FedReply::Hits {
                    geometry: Some(GeometrySpec::Euclidean { dim: 3 }),
                    hits: vec![],
                }),
            ),
        ];
        let out = merge("n", None, replies, &query).unwrap();
        let got: Vec<(&str, f64)> = out
            .hits
            .iter()
            .map(|h| (h.instance.as_str(), h.distance))
            .collect();
        assert_eq!(got, vec![("b", 0.5), ("a", 1.0), ("b", 2.0)]);
        assert_eq!(out.answered, vec!["a", "b"]);
        assert_eq!(out.missing, vec!["c"]);
        assert_eq!(out.refused[0].instance, "d");
        assert_eq!(out.refused[0].code, "geometry_mismatch");
    }

    #[test]
    fn a_reply_round_trips_in_msgpack() {
        let r = hits(&[(1.0, 2.0)]);
        let bytes = rmp_serde::to_vec_named(&r).unwrap();
        let back: FedReply = rmp_serde::from_slice(&bytes).unwrap();
        let FedReply::Hits { geometry, hits } = back else {
            panic!("not hits")
        };
        assert_eq!(geometry, Some(GeometrySpec::Euclidean { dim: 2 }));
        assert_eq!(hits[0].vector, vec![1.0, 2.0]);
    }
}
