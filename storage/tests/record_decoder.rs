//! The stored-record decoder on arbitrary and damaged bytes: an error,
//! never a panic, a stack overflow or an allocation a length field asks for.

use hvs_storage::{MessageRecord, StorageError, decode_stored_rows, try_decode_stored_rows};
use proptest::prelude::*;

fn a_message() -> Vec<u8> {
    let m = MessageRecord {
        id: uuid::Uuid::now_v7(),
        namespace: "n".into(),
        from: "a".into(),
        to: vec!["b".into()],
        payload: b"hello".to_vec(),
        vector: vec![1.0, 0.0, 0.0],
        metadata: [("k".to_string(), serde_json::json!({"x": [1, 2]}))].into(),
        sent_ms: 1,
        expires_ms: None,
    };
    rmp_serde::to_vec_named(&m).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_stored_rows(&bytes);
    }

    #[test]
    fn damaged_rows_never_panic(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in 0usize..200,
    ) {
        let mut b = a_message();
        for (at, v) in flips {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(cut.min(b.len()));
        decode_stored_rows(&b);
    }
}

/// Each input is refused by every row decoder with `Corrupt` (a typed
/// error, not a panic): nesting far deeper than stored metadata may be,
/// and lengths that promise more elements or bytes than follow.
#[test]
fn deep_nesting_and_huge_lengths_are_refused() {
    let mut deep = vec![0x81, 0xa1, b'k'];
    deep.extend(std::iter::repeat_n(0x91u8, 100_000));
    let huge_array = b"\xdd\xff\xff\xff\xff".to_vec();
    let huge_map = b"\xdf\xff\xff\xff\xff".to_vec();
    let huge_bytes = b"\xc6\xff\xff\xff\xff".to_vec();
    for (what, bytes) in [
        ("deep", deep),
        ("array of 2^32-1", huge_array),
        ("map of 2^32-1", huge_map),
        ("bin of 2^32-1", huge_bytes),
        ("deep metadata in a message", a_message_with_deep_metadata()),
    ] {
        for (kind, answer) in try_decode_stored_rows(&bytes).into_iter().enumerate() {
            assert!(
                matches!(answer, Err(StorageError::Corrupt(_))),
                "{what}, row kind {kind}: {answer:?}"
            );
        }
    }
    // The same message with shallow metadata decodes: the refusal above is
    // the depth's.
    assert!(try_decode_stored_rows(&a_message())[1].is_ok());
}

/// A well-formed message row whose metadata nests 10,000 arrays deep.
fn a_message_with_deep_metadata() -> Vec<u8> {
    let bytes = a_message();
    // The metadata value `{"x": [1, 2]}`: replace `[1, 2]` by deep nesting.
    let shallow = [0x92, 0x01, 0x02];
    let at = bytes
        .windows(3)
        .position(|w| w == shallow)
        .expect("the message holds [1, 2]");
    let mut out = bytes[..at].to_vec();
    out.extend(std::iter::repeat_n(0x91u8, 10_000));
    out.push(0x01);
    out.extend(&bytes[at + 3..]);
    out
}
