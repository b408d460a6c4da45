//! Fuzz target `vmdk`: its body is `rehost_fuzz::vmdk::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/vmdk/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::vmdk::run(data));
