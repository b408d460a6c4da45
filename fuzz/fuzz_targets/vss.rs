//! Fuzz target `vss`: its body is `rehost_fuzz::vss::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/vss/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::vss::run(data));
