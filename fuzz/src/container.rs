//! Any bytes as an image file (raw, VHD or VHDX by content): open it and read it.

/// The target's body.
pub fn run(data: &[u8]) {
    super::open_and_read(data);
}
