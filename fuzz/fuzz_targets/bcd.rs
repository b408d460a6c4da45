//! Fuzz target `bcd`: its body is `rehost_fuzz::bcd::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/bcd/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::bcd::run(data));
