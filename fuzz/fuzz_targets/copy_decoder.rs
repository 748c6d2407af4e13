//! Feeds arbitrary bytes, cut into arbitrary chunks, to the binary COPY decoder (the body
//! is `tributary_fuzz::copy_decoder`, shared with the stable driver `fuzz_stable`).
//!
//!     cargo +nightly fuzz run copy_decoder corpus/copy_decoder
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tributary_fuzz::copy_decoder(data));
