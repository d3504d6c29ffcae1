#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cailloux_fuzz::record_decode(data));
