//! Fuzz target `lznt1`: its body is `rehost_fuzz::lznt1::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/lznt1/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::lznt1::run(data));
