//! Reading from a mirror of a failover group, with read repair
//! (docs/CLUSTER.md, "Reading from a mirror"), end to end: one real
//! `nats-server`, two real `hvs serve --group g` processes, a model
//! writing through the primary and the same model reading on the mirror.

mod support;

use std::time::Duration;

use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientConfig, ClientError};
use serde_json::json;
use support::{Instance, Nats, contract, eventually};

const NS: &str = "ro";

fn group_args() -> Vec<&'static str> {
    vec!["--group", "g", "--lease-ttl-ms", "2000"]
}

/// The index of the instance that says it is the primary, once exactly
/// one does and the other says it is a mirror.
async fn roles(instances: &[Instance]) -> (usize, usize) {
    eventually("a primary and a mirror", || async {
        let roles: Vec<Option<String>> = instances.iter().map(Instance::role).collect();
        match (roles[0].as_deref(), roles[1].as_deref()) {
            (Some("primary"), Some("mirror")) => Some((0, 1)),
            (Some("mirror"), Some("primary")) => Some((1, 0)),
            _ => None,
        }
    })
    .await
}

fn config(addr: String) -> ClientConfig {
    let mut c = ClientConfig::new(addr, contract("w", NS, "euclidean", 2));
    c.request_timeout = Duration::from_secs(20);
    c
}

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> String {
    match r {
        Err(ClientError::Server(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `/health`'s `cluster.group.<field>` of `i`.
fn group_count(i: &Instance, field: &str) -> Option<u64> {
    i.admin_json("/health")?["cluster"]["group"][field].as_u64()
}

fn vector(k: f64) -> p::StoreVector {
    p::StoreVector {
        namespace: NS.into(),
        vector: vec![k, 1.0],
        region: None,
        metadata: [("k".to_string(), json!(k))].into_iter().collect(),
    }
}

/// The mirror's answer for `id`: its version (0: absent).
async fn version_on(c: &Client, id: &str) -> u64 {
    c.retrieve_vector(id)
        .await
        .unwrap()
        .map_or(0, |v| v.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serves_reads_and_repairs_them_from_the_primary() {
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start(root.path());
    let mut instances: Vec<Instance> = ["a", "b"]
        .iter()
        .map(|n| Instance::start_with(root.path(), n, &nats.url(), &group_args()))
        .collect();
    let (pi, mi) = roles(&instances).await;
    let (primary, mirror) = (&instances[pi], &instances[mi]);

    let writer = Client::connect(config(primary.addr())).await.unwrap();
    let first = writer.store_vector(&vector(1.0)).await.unwrap();
    let second = writer.store_vector(&vector(2.0)).await.unwrap();

    // Without asking for reads from a mirror, a client is refused as
    // before (following clients move on to the primary it names).
    match Client::connect(config(mirror.addr())).await {
        Err(ClientError::Server(e)) => {
            assert_eq!(e.code, "not_primary");
            assert_eq!(e.primary.as_deref(), Some(primary.addr().as_str()));
        }
        Err(e) => panic!("a plain hello on the mirror: {e}"),
        Ok(_) => panic!("a plain hello on the mirror was taken"),
    }

    // Asking for it, once the contract and the namespace are mirrored.
    let reader = eventually("a read session on the mirror", || async {
        Client::connect(config(mirror.addr()).with_mirror_reads())
            .await
            .ok()
    })
    .await;
    let welcome = reader.welcome().await.unwrap();
    assert_eq!(welcome.role.as_deref(), Some("mirror"));
    assert_eq!(welcome.primary.as_deref(), Some(primary.addr().as_str()));
    assert!(welcome.read_only, "{welcome:?}");
    // Held by the mirror, or repaired from the primary (which may not
    // answer within the repair's 500 ms on a busy machine: then the next
    // read, once the mirror's job applied it).
    let read = eventually("the first vector read on the mirror", || async {
        reader.retrieve_vector(&first.id).await.ok().flatten()
    })
    .await;
    assert_eq!((read.version, read.vector), (1, Some(vec![1.0, 1.0])));

    // Read-only: writes, receive and subscribe are refused.
    assert_eq!(code(reader.store_vector(&vector(3.0)).await), "not_primary");
    let update = p::UpdateVector {
        id: first.id.clone(),
        vector: Some(vec![9.0, 1.0]),
        ..Default::default()
    };
    assert_eq!(code(reader.update_vector(update).await), "not_primary");
    assert_eq!(code(reader.receive(10).await), "not_primary");
    let some = [first.id.clone()];
    assert_eq!(code(reader.ack(&some).await), "not_primary");
    assert_eq!(code(reader.release(&some).await), "not_primary");

    // The mirror falls behind: its job paused, the primary changes a
    // vector, deletes another and stores a third.
    let job = format!("mirror-{}", primary.name);
    eventually("the mirror applied both vectors", || async {
        let s = reader.sync_status(&job).await.ok()?;
        (s.pending == 0 && version_on(&reader, &second.id).await == 1).then_some(())
    })
    .await;
    reader.sync_pause(&job).await.unwrap();
    let repairs_before = group_count(mirror, "read_repairs").unwrap();
    let updated = writer
        .update_vector(p::UpdateVector {
            id: first.id.clone(),
            vector: Some(vec![5.0, 1.0]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(writer.delete_vector(&second.id).await.unwrap());
    let third = writer.store_vector(&vector(3.0)).await.unwrap();
    let paused = reader.sync_status(&job).await.unwrap();
    assert_eq!(paused.state, p::SyncState::Paused, "{paused:?}");

    // Reads on the mirror answer the primary's versions, repairing it.
    let read = reader.retrieve_vector(&first.id).await.unwrap().unwrap();
    assert_eq!((read.version, read.vector), (2, Some(vec![5.0, 1.0])));
    assert_eq!(reader.retrieve_vector(&second.id).await.unwrap(), None);
    let found = reader
        .retrieve_vectors(&[third.id.clone(), first.id.clone()], false)
        .await
        .unwrap();
    let versions: Vec<(String, u64)> = found
        .vectors
        .iter()
        .map(|v| (v.id.clone(), v.version))
        .collect();
    assert_eq!(versions, vec![(third.id.clone(), 1), (first.id.clone(), 2)]);
    assert_eq!(
        group_count(mirror, "read_repairs"),
        Some(repairs_before + 3),
        "one repair each: the update, the deletion, the vector missing here"
    );

    // The mirror's own copy is the repaired one (its job still paused):
    // read again, nothing more to repair; and with the primary stopped
    // (SIGSTOP, well within its lease), the mirror answers its own copy.
    assert_eq!(version_on(&reader, &first.id).await, 2);
    assert_eq!(version_on(&reader, &third.id).await, 1);
    assert_eq!(
        group_count(mirror, "read_repairs"),
        Some(repairs_before + 3)
    );
    let unanswered = group_count(mirror, "read_repair_unanswered").unwrap();
    primary.signal("STOP");
    let alone = reader.retrieve_vector(&first.id).await;
    let alone_third = reader.retrieve_vector(&third.id).await;
    primary.signal("CONT");
    assert_eq!(alone.unwrap().map(|v| v.version), Some(2));
    assert_eq!(alone_third.unwrap().map(|v| v.version), Some(1));
    assert_eq!(
        group_count(mirror, "read_repair_unanswered"),
        Some(unanswered + 2)
    );
    let metrics = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", mirror.admin)).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: hvs\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    assert!(
        metrics.contains(&format!("hvs_read_repairs {}", repairs_before + 3)),
        "{metrics}"
    );

    // Subscribing is refused too (mail is the primary's).
    assert_eq!(code(reader.subscribe().await), "not_primary");
    reader.unsubscribe().await.unwrap();

    // The mirror catches up, then the primary goes: the mirror's read
    // session closes when its role changes, and the client's next call
    // opens a session on the new primary.
    reader.sync_resume(&job).await.unwrap();
    eventually("the mirror caught up", || async {
        let s = reader.sync_status(&job).await.ok()?;
        (s.pending == 0).then_some(())
    })
    .await;
    drop(writer);
    instances[pi].kill9();
    let mirror = &instances[mi];
    eventually("the mirror promoted", || async {
        (mirror.role().as_deref() == Some("primary")).then_some(())
    })
    .await;
    eventually("a session on the new primary", || async {
        let w = reader.welcome().await.ok()?;
        w.role.is_none().then_some(())
    })
    .await;
    let read = reader.retrieve_vector(&first.id).await.unwrap().unwrap();
    assert_eq!(read.version, 2);
    reader.store_vector(&vector(4.0)).await.unwrap();
}
