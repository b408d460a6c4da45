//! Fuzz target `qcow2`: its body is `rehost_fuzz::qcow2::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/qcow2/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::qcow2::run(data));
