//! Random bytes, dressed with each format's signatures so that every parser gets past its
//! first check, fed to every parser: answers or errors, never a panic or a hang.

mod common;

use rehost::disk::{self, Memory, ReadAt};
use rehost::fs::ntfs::{lznt1, runlist};
use rehost::fs::FileSystem;
use rehost::volume::{scan, Content};
use rehost::{Ctx, Layer};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Rng;

fn ctx() -> Ctx {
    Ctx::new("random.img", Layer::Volume)
}

#[test]
fn containers_open_or_refuse() {
    if common::bounded::reran_in_child("containers_open_or_refuse") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.img");
    let mut rng = Rng(0x5151_5151_0000_0001);
    for round in 0..300 {
        let len = [0, 1, 511, 512, 4096, 65536, 300_000, 1 << 20][rng.below(8) as usize]
            + rng.below(600) as usize;
        let mut b = rng.bytes(len);
        match round % 3 {
            0 if b.len() >= 8 => b[..8].copy_from_slice(b"vhdxfile"),
            1 if b.len() >= 512 => {
                let n = b.len();
                b[n - 512..n - 504].copy_from_slice(b"conectix");
            }
            _ => {}
        }
        std::fs::write(&path, &b).unwrap();
        let started = Instant::now();
        if let Ok(d) = disk::open(&path, &Default::default()) {
            let mut buf = vec![0u8; 4096];
            let mut pos = 0;
            while pos + 4096 <= d.size().min(4 << 20) {
                let _ = d.read_at(pos, &mut buf);
                pos += 4096 * (1 + rng.below(64));
            }
            let _ = scan(d.reader(), 512, &ctx());
        }
        assert!(started.elapsed() < Duration::from_secs(5), "round {round}");
    }
}

#[test]
fn file_systems_open_or_refuse() {
    if common::bounded::reran_in_child("file_systems_open_or_refuse") {
        return;
    }
    let mut rng = Rng(0x7777_0000_1234_5678);
    for round in 0..400 {
        let len = (64 + rng.below(2048)) as usize * 512;
        let mut b = rng.bytes(len);
        let content = if round % 2 == 0 {
            // An NTFS boot sector with plausible geometry and random everything else.
            b[3..11].copy_from_slice(b"NTFS    ");
            b[11..13].copy_from_slice(&512u16.to_le_bytes());
            b[13] = 1 << rng.below(4);
            b[0x28..0x30].copy_from_slice(&((len / 512) as u64).to_le_bytes());
            b[0x30..0x38].copy_from_slice(&(1 + rng.below(64)).to_le_bytes());
            b[0x40] = 0xF6; // 1 KiB records
            b[0x44] = 0xF4; // 4 KiB index blocks
            Content::Ntfs
        } else {
            // A FAT boot sector with a consistent-looking BPB.
            b[0] = 0xEB;
            b[11..13].copy_from_slice(&512u16.to_le_bytes());
            b[13] = 1 << rng.below(3);
            b[14..16].copy_from_slice(&(1 + rng.below(8) as u16).to_le_bytes());
            b[16] = 2;
            b[17..19].copy_from_slice(&512u16.to_le_bytes());
            b[19..21].copy_from_slice(&((len / 512) as u16).to_le_bytes());
            b[22..24].copy_from_slice(&(1 + rng.below(16) as u16).to_le_bytes());
            b[510] = 0x55;
            b[511] = 0xAA;
            Content::Fat16
        };
        let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("random.img", b));
        let started = Instant::now();
        if let Ok(fs) = FileSystem::open(dev, content, &ctx()) {
            let mut files = Vec::new();
            fs.walk(
                "",
                &mut |p, e| {
                    if !e.is_dir && files.len() < 100 {
                        files.push(p.to_string())
                    }
                },
                &mut |_, _| {},
            );
            for f in files {
                let _ = fs.copy_to(&f, "", &mut std::io::sink());
            }
            if let FileSystem::Ntfs(n) = &fs {
                let _ = n.facts();
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "round {round}");
    }
}

#[test]
fn small_parsers_never_panic() {
    if common::bounded::reran_in_child("small_parsers_never_panic") {
        return;
    }
    let mut rng = Rng(0x1357_9bdf_2468_ace0);
    let c = Ctx::new("random.img", Layer::Ntfs);
    let mut out = vec![0u8; 65536];
    for _ in 0..3000 {
        let n = rng.below(5000) as usize;
        let mut b = rng.bytes(n);
        let _ = lznt1::decompress(&b, &mut out);
        let _ = runlist::decode(&b, rng.below(1000), rng.next() >> rng.below(64), &c, 0);
        if b.len() >= 1024 {
            b[..4].copy_from_slice(b"FILE");
            let _ = rehost::fs::ntfs::fixup::unprotect(&mut b[..1024], b"FILE", &c, 0);
            let _ = rehost::fs::ntfs::record::Record::parse(5, b[..1024].to_vec(), 0, &c)
                .and_then(|r| r.attributes(1 << 20, &c));
        }
        let _ = rehost::volume::sniff(&b);
        let _ = scan(Arc::new(Memory::new("random.img", b)), 512, &ctx());
    }
}
