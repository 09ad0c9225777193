//! A trimmed change feed (`StoreConfig::feed_keep`): the file stops
//! growing with the feed, the entries kept read as before, reads of trimmed
//! ones are a typed error, the publisher's saved position is never passed,
//! and the feed's position survives a reopen.

use hvs_storage::{Durability, FEED_PUBLISHED, FEED_TRIM_STEP, StorageError, Store, StoreConfig};

/// Writes `n` catalog records, one change-feed entry (and row) each,
/// handed to the writer without waiting so that they share commits.
fn write(store: &Store, from: u64, n: u64) {
    let (tx, rx) = std::sync::mpsc::channel();
    for i in from..from + n {
        let tx = tx.clone();
        store.catalog_put_then(
            "note",
            &format!("n{i}"),
            vec![1; 32],
            Box::new(move |r| tx.send(r).unwrap()),
        );
    }
    drop(tx);
    for r in rx {
        r.unwrap();
    }
}

fn kept(keep: u64) -> StoreConfig {
    StoreConfig {
        feed_keep: Some(keep),
        ..StoreConfig::memory()
    }
}

#[test]
fn a_trimmed_feed_keeps_the_last_entries_and_refuses_older_reads() {
    let keep = 1000;
    let store = Store::open(kept(keep)).unwrap();
    let n = 4 * FEED_TRIM_STEP;
    write(&store, 0, n);
    let last = store.last_change();
    assert!(last >= n, "one entry a record at least: {last}");
    // Trimmed: the oldest entries are gone, a typed error says which is
    // the first kept.
    let first = match store.changes_since(0, 10) {
        Err(e @ StorageError::FeedTrimmed { first }) => {
            // The reader's position is behind: its request, not a fault.
            assert_eq!(e.code(), "feed_trimmed");
            assert!(e.is_validation());
            first
        }
        other => panic!("expected feed_trimmed, got {other:?}"),
    };
    assert!(first > 1);
    // Never more than `keep` and a step's rows (one entry each here).
    assert!(
        last - first < keep + FEED_TRIM_STEP + 1,
        "first {first} last {last}"
    );
    // At least the last `keep` entries read as before, in order, no gap.
    let tail = store.changes_since(last - keep, usize::MAX).unwrap();
    assert_eq!(tail.len() as u64, keep);
    assert!(tail.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(tail.last().unwrap().seq, last);
    // Reading from just before the first kept entry is not an error.
    let from_first = store.changes_since(first - 1, 5).unwrap();
    assert_eq!(from_first[0].seq, first);
}

#[test]
fn without_feed_keep_nothing_is_trimmed() {
    let store = Store::open(StoreConfig::memory()).unwrap();
    write(&store, 0, 2 * FEED_TRIM_STEP);
    let all = store.changes_since(0, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, store.last_change());
    assert_eq!(all[0].seq, 1);
}

#[test]
fn trimming_never_passes_the_publishers_saved_position() {
    let store = Store::open(kept(100)).unwrap();
    write(&store, 0, 10);
    let published = store.last_change();
    store.set_mark(FEED_PUBLISHED, published).unwrap();
    write(&store, 10, 3 * FEED_TRIM_STEP);
    // Everything after the saved position is there to publish.
    let rest = store.changes_since(published, usize::MAX).unwrap();
    assert_eq!(rest.first().unwrap().seq, published + 1);
    assert_eq!(rest.len() as u64, store.last_change() - published);
    // Once it moves on, the feed is trimmed up to it.
    let moved = store.last_change() - 50;
    store.set_mark(FEED_PUBLISHED, moved).unwrap();
    write(&store, 10 + 3 * FEED_TRIM_STEP, 10);
    assert!(matches!(
        store.changes_since(published, 1),
        Err(StorageError::FeedTrimmed { .. })
    ));
    assert!(store.changes_since(moved, 1).is_ok());
}

#[test]
fn a_reopened_trimmed_feed_goes_on_from_its_last_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = || StoreConfig {
        feed_keep: Some(10),
        ..StoreConfig::file(dir.path().join("s.redb"), Durability::Buffered)
    };
    let store = Store::open(config()).unwrap();
    write(&store, 0, 2 * FEED_TRIM_STEP);
    let last = store.last_change();
    assert!(matches!(
        store.changes_since(0, 1),
        Err(StorageError::FeedTrimmed { .. })
    ));
    store.close().unwrap();
    let store = Store::open(config()).unwrap();
    assert_eq!(store.last_change(), last);
    write(&store, 2 * FEED_TRIM_STEP, 1);
    let next = store.changes_since(last, 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, last + 1);
}
