//! Fuzz target `ntfs_volume`: its body is `rehost_fuzz::ntfs_volume::run` (what it does is said there),
//! which the test suite also replays over `fuzz/corpus/ntfs_volume/`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: rehost_fuzz::init(), |data: &[u8]| rehost_fuzz::ntfs_volume::run(data));
