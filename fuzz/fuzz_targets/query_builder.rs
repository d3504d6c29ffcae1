#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cailloux_fuzz::query_builder::query_builder(data));
