//! A row read back from the database file into the stored-record decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hvs_storage::decode_stored_rows(data);
});
