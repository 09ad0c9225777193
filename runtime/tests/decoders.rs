//! Whatever bytes a peer sends, the decoders answer with an error or a
//! value, never a panic, and never allocate what a length field claims
//! before the bytes are there: request heads, every operation's arguments,
//! the client's view of server frames, and contracts.

use hvs_runtime::Contract;
use hvs_runtime::protocol::{self as p, ServerFrame};
use proptest::prelude::*;

/// A request frame, every operation's arguments among them, and the
/// client's view of server frames, decoded from `frame`.
fn decode_every_op(frame: &[u8]) {
    let _ = p::decode::<p::RequestHead>(frame);
    let _ = p::decode_head(frame);
    let _ = p::decode_request(frame);
    let _ = p::peek_frame(frame);
    let _ = p::decode::<ServerFrame>(frame);
    let _ = p::decode::<p::Welcome>(frame);
}

/// A valid request with its bytes then mangled: closer to real damage
/// than uniform noise.
fn mangled_request() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        prop::sample::select(p::Request::OPS.to_vec()),
        prop::collection::vec(any::<(usize, u8)>(), 0..8),
        0usize..200,
    )
        .prop_map(|(id, op, flips, cut)| {
            let args = p::value(&serde_json::json!({
                "to": "b", "payload": "hi", "vector": [1.0, 0.0, 0.0],
                "namespace": "n", "k": 3, "ids": ["x"],
                "content": {"text": "t"}, "versions": [1], "contract": "{}"
            }))
            .unwrap();
            let mut b = p::encode(&p::RawRequest {
                id,
                op: op.into(),
                args,
            })
            .unwrap();
            for (at, v) in flips {
                if !b.is_empty() {
                    let i = at % b.len();
                    b[i] = v;
                }
            }
            b.truncate(cut.min(b.len()));
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_every_op(&bytes);
        let _ = Contract::from_slice(&bytes);
    }

    #[test]
    fn mangled_requests_never_panic_a_decoder(bytes in mangled_request()) {
        decode_every_op(&bytes);
    }
}

/// A length field that promises far more than the frame holds is refused
/// without allocating it (msgpack array32 of 4 billion elements, str32 of
/// 4 GB, map32 of 4 billion entries).
#[test]
fn huge_length_fields_are_refused_without_allocating() {
    for frame in [
        &b"\x81\xa4args\xdd\xff\xff\xff\xff"[..],
        &b"\x82\xa2id\x01\xa2op\xdb\xff\xff\xff\xff"[..],
        &b"\xdf\xff\xff\xff\xff"[..],
        &b"\x83\xa2id\x01\xa2op\xa4send\xa4args\x81\xa7payload\xc6\xff\xff\xff\xff"[..],
    ] {
        decode_every_op(frame);
        assert!(p::decode_request(frame).is_err());
    }
}

/// Nesting deeper than the decoder's limit is refused, not a stack
/// overflow: a metadata value of 100,000 nested arrays.
#[test]
fn deeply_nested_values_are_refused() {
    let mut frame =
        b"\x83\xa2id\x01\xa2op\xa4send\xa4args\x82\xa2to\xa1b\xa8metadata\x81\xa1k".to_vec();
    frame.extend(std::iter::repeat_n(0x91u8, 100_000));
    frame.push(0xc0);
    let (id, e) = p::decode_request(&frame).unwrap_err();
    assert_eq!((id, e.code.as_str()), (Some(1), "bad_request"));
}
