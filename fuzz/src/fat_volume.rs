//! Any bytes as a FAT volume: open, walk, read every file.

/// The target's body.
pub fn run(data: &[u8]) {
    super::exercise_volume(data, rehost::volume::Content::Fat16, rehost::Layer::Fat);
}
