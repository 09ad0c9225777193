//! A contract file's bytes into the contract parser and validator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hvs_contracts::Contract::from_slice(data);
});
