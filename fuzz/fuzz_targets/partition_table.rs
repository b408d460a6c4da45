//! Fuzz target `partition_table`: its body is `rehost_fuzz::partition_table::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/partition_table/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::partition_table::run(data));
