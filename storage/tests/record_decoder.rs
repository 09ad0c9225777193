//! The stored-record decoder on arbitrary and damaged bytes: an error,
//! never a panic, a stack overflow or an allocation a length field asks for.

use hvs_storage::{MessageRecord, decode_stored_rows};
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

#[test]
fn deep_nesting_and_huge_lengths_are_refused() {
    let mut deep = vec![0x81, 0xa1, b'k'];
    deep.extend(std::iter::repeat_n(0x91u8, 100_000));
    decode_stored_rows(&deep);
    decode_stored_rows(b"\xdd\xff\xff\xff\xff");
    decode_stored_rows(b"\xdf\xff\xff\xff\xff");
    decode_stored_rows(b"\xc6\xff\xff\xff\xff");
}
