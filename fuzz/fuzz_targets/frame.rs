//! A frame body from a peer, into every decoder the server and the client
//! run on it: the request (every operation's arguments among them), the
//! head read when a request cannot be, and the server's frames.
#![no_main]

use hvs_wire::protocol as p;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = p::decode_request(data);
    let _ = p::decode_head(data);
    let _ = p::peek_frame(data);
    let _ = p::decode::<p::ServerFrame>(data);
});
