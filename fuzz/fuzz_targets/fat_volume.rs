//! Fuzz target `fat_volume`: its body is `rehost_fuzz::fat_volume::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/fat_volume/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::fat_volume::run(data));
