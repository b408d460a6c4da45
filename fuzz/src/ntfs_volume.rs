//! Any bytes as an NTFS volume: open, walk, read every file, read the facts.

/// The target's body.
pub fn run(data: &[u8]) {
    super::exercise_volume(data, rehost::volume::Content::Ntfs, rehost::Layer::Ntfs);
}
