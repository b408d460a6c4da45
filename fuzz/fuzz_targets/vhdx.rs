//! Fuzz target `vhdx`: its body is `rehost_fuzz::vhdx::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/vhdx/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::vhdx::run(data));
