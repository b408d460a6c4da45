//! Fuzz target `regf_hive`: its body is `rehost_fuzz::regf_hive::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/regf_hive/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::regf_hive::run(data));
