//! Fuzz target `e01`: its body is `rehost_fuzz::e01::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/e01/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::e01::run(data));
