//! Damaged NTFS volumes: clear errors naming the image, the layer and the offset or path;
//! never a panic, a hang or an unbounded allocation.

mod common;

use rehost::disk::{Memory, ReadAt};
use rehost::fs::ntfs::Ntfs;
use rehost::fs::FileSystem;
use rehost::{Ctx, Layer};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn volume() -> Vec<u8> {
    std::fs::read(common::fixture("ntfs/testfs1.zst")).unwrap()
}

fn open(bytes: Vec<u8>) -> rehost::Result<FileSystem> {
    let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("damaged.img", bytes));
    Ok(FileSystem::Ntfs(Box::new(Ntfs::open(
        dev,
        Ctx::new("damaged.img", Layer::Ntfs),
    )?)))
}

/// Reads everything a user could ask for; returns the errors met.
fn exercise(fs: &FileSystem) -> Vec<String> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    fs.walk(
        "",
        &mut |p, e| {
            if !e.is_dir && files.len() < 2000 {
                files.push(p.to_string());
            }
        },
        &mut |p, e| errors.push(format!("{p}: {e}")),
    );
    for f in files {
        // A damaged size can make a legal sparse file of terabytes: stop at 64 MiB.
        let mut sink = Limit(64 << 20);
        if let Err(e) = fs.copy_to(&f, "", &mut sink) {
            errors.push(e.to_string());
        }
    }
    if let FileSystem::Ntfs(n) = fs {
        if let Err(e) = n.facts() {
            errors.push(e.to_string());
        }
    }
    errors
}

/// A sink that refuses more than its limit.
struct Limit(usize);
impl std::io::Write for Limit {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if b.len() > self.0 {
            return Err(std::io::Error::other("limit reached"));
        }
        self.0 -= b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

use common::Rng;

#[test]
fn broken_fixup_names_the_record_and_offset() {
    if common::bounded::reran_in_child("broken_fixup_names_the_record_and_offset") {
        return;
    }
    let mut img = volume();
    let fs = open(img.clone()).unwrap();
    let FileSystem::Ntfs(n) = &fs else {
        unreachable!()
    };
    let rec = n.record(66).unwrap();
    // The last two bytes of the first 512-byte stride hold the update sequence number.
    let at = rec.pos as usize + 510;
    img[at] ^= 0x55;
    let fs = open(img).unwrap();
    let e = fs
        .copy_to("1000-bytes-file", "", &mut std::io::sink())
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("damaged.img: ntfs"), "{msg}");
    assert!(
        msg.contains("MFT record 66") && msg.contains("fixup"),
        "{msg}"
    );
    assert!(msg.contains(&format!("{:#x}", rec.pos)), "{msg}");
}

#[test]
fn index_loop_is_an_error_not_a_hang() {
    if common::bounded::reran_in_child("index_loop_is_an_error_not_a_hang") {
        return;
    }
    let mut img = volume();
    let fs = open(img.clone()).unwrap();
    let FileSystem::Ntfs(n) = &fs else {
        unreachable!()
    };
    let dir = n.lookup("many_subdirs").unwrap();
    let alloc = dir
        .stream_desc(0xA0, "$I30", n.ctx(), "many_subdirs")
        .unwrap()
        .expect("many_subdirs has INDX blocks");
    let first = alloc.runs.iter().find_map(|r| r.lcn).unwrap();
    let block = (first * n.boot().cluster_size as u64) as usize;
    assert_eq!(&img[block..block + 4], b"INDX");
    let vcn = u64::from_le_bytes(img[block + 0x10..block + 0x18].try_into().unwrap());
    // Make the block's last entry point at the block itself: give it a subnode VCN (the
    // node has room to grow by the 8 bytes).
    let hdr = block + 0x18;
    let u32_at = |img: &[u8], at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
    let used = u32_at(&img, hdr + 4) as usize;
    assert!(
        u32_at(&img, hdr + 8) as usize >= used + 8,
        "no room in the node"
    );
    let mut off = hdr + u32_at(&img, hdr) as usize;
    while img[off + 12] & 2 == 0 {
        off += u16::from_le_bytes(img[off + 8..off + 10].try_into().unwrap()) as usize;
    }
    let vcn_at = off + 16;
    assert!(
        (vcn_at - block) % 512 < 502,
        "subnode VCN would cover a fixup"
    );
    img[off + 8..off + 10].copy_from_slice(&24u16.to_le_bytes());
    img[off + 12] |= 1;
    img[vcn_at..vcn_at + 8].copy_from_slice(&vcn.to_le_bytes());
    img[hdr + 4..hdr + 8].copy_from_slice(&((used + 8) as u32).to_le_bytes());
    let fs = open(img).unwrap();
    let started = Instant::now();
    let e = fs.read_dir("many_subdirs").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("index loop"), "{e}");
    assert!(e.to_string().contains("many_subdirs"), "{e}");
}

#[test]
fn zeroed_and_truncated_volumes_are_refused_clearly() {
    if common::bounded::reran_in_child("zeroed_and_truncated_volumes_are_refused_clearly") {
        return;
    }
    let img = volume();
    let e = open(vec![0u8; img.len()])
        .err()
        .expect("zeroed volume opens");
    assert!(e.to_string().contains("no NTFS boot sector"), "{e}");
    let e = open(img[..300_000].to_vec())
        .err()
        .expect("truncated volume opens");
    assert!(e.to_string().starts_with("damaged.img: ntfs"), "{e}");
    let mut no_mft = img.clone();
    let fs = open(img).unwrap();
    let FileSystem::Ntfs(n) = &fs else {
        unreachable!()
    };
    let mft = (n.boot().mft_lcn * n.boot().cluster_size as u64) as usize;
    no_mft[mft..mft + 1024].fill(0);
    let e = open(no_mft).err().expect("volume without MFT opens");
    assert!(e.to_string().contains("FILE record"), "{e}");
}

/// Hundreds of seeded mutations of the metadata: every outcome is an answer or an error,
/// each reached quickly.
#[test]
fn random_mutations_never_panic_or_hang() {
    if common::bounded::reran_in_child("random_mutations_never_panic_or_hang") {
        return;
    }
    let base = volume();
    let fs = open(base.clone()).unwrap();
    let FileSystem::Ntfs(n) = &fs else {
        unreachable!()
    };
    let mft = n.boot().mft_lcn * n.boot().cluster_size as u64;
    let mft_len = 600 * 1024u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut opened = 0;
    let mut errors = 0;
    let verbose = std::env::var_os("REHOST_TEST_VERBOSE").is_some();
    for round in 0..300 {
        if verbose {
            eprintln!("round {round}");
        }
        let mut img = base.clone();
        let flips = 1 + rng.below(16);
        for _ in 0..flips {
            let at = match rng.below(4) {
                0 => rng.below(512),               // boot sector
                1 | 2 => mft + rng.below(mft_len), // MFT records
                _ => rng.below(img.len() as u64),  // anywhere (INDX blocks, data)
            } as usize;
            img[at] = match rng.below(3) {
                0 => rng.next() as u8,
                1 => 0xFF,
                _ => 0,
            };
        }
        let started = Instant::now();
        match open(img) {
            Ok(fs) => {
                opened += 1;
                errors += exercise(&fs).len();
            }
            Err(e) => {
                errors += 1;
                assert!(
                    e.to_string().starts_with("damaged.img: "),
                    "round {round}: {e}"
                );
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "round {round} took {:?}",
            started.elapsed()
        );
    }
    assert!(opened > 50, "only {opened} of 300 mutated volumes opened");
    assert!(errors > 0, "no mutation was noticed");
}
