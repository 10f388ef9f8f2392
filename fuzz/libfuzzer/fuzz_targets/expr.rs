#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshstats_fuzz::targets::expr::run(data));
