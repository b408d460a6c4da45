//! New identifiers: version-4 GUIDs from the system's random source, or from a seed so that
//! the same inputs give the same bytes (tests, reproducible output).

/// Where new identifiers (VHDX FileWriteGuid, DataWriteGuid, LogGuid, GPT disk and partition
/// GUIDs) come from: the system's random source, or a seed for reproducible output.
pub struct Ids {
    seed: Option<u64>,
}

impl Ids {
    /// Identifiers from `seed`, or random ones when `None`.
    pub fn new(seed: Option<u64>) -> Self {
        Ids { seed }
    }

    /// A new version-4 GUID.
    pub fn guid(&mut self) -> uuid::Uuid {
        let mut b = [0u8; 16];
        match &mut self.seed {
            Some(s) => {
                for chunk in b.chunks_mut(8) {
                    // splitmix64
                    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = *s;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
                }
            }
            None => random_bytes(&mut b),
        }
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

/// Fills `b` from the system's random source; falls back to the time and process id (the
/// identifiers must differ between writes, not be secret).
fn random_bytes(b: &mut [u8; 16]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b))
        .is_ok()
    {
        return;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut ids = Ids::new(Some(t as u64 ^ u64::from(std::process::id()) << 32));
    b.copy_from_slice(ids.guid().as_bytes());
}
