//! A row read back from the database file into the stored-record decoder
//! (every kind of row, change-feed entries included: the same decoder reads
//! changes other instances publish, `hvs_storage::decode_change`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hvs_storage::decode_stored_rows(data);
});
