//! The NTFS boot sector's size fields as Windows writes them for every cluster size: sectors
//! per cluster a power of two up to 0x80, then a negative exponent of sectors (0xF8 = 256
//! sectors: 128 KiB on 512-byte sectors); MFT record and index block sizes a negative
//! exponent of bytes (0xF6 = 1 KiB, 0xF4 = 4 KiB) whatever the cluster size.

use rehost::fs::ntfs::boot::BootSector;
use rehost::{Ctx, Layer};

/// A boot sector of `bps`-byte sectors with the given size bytes, 64 MiB long, `$MFT` at
/// cluster 2.
fn sector(bps: u16, spc: u8, per_record: u8, per_index: u8) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[3..11].copy_from_slice(b"NTFS    ");
    b[0x0B..0x0D].copy_from_slice(&bps.to_le_bytes());
    b[0x0D] = spc;
    b[0x28..0x30].copy_from_slice(&((64u64 << 20) / bps as u64).to_le_bytes());
    b[0x30..0x38].copy_from_slice(&2u64.to_le_bytes());
    b[0x38..0x40].copy_from_slice(&3u64.to_le_bytes());
    b[0x40] = per_record;
    b[0x44] = per_index;
    b
}

fn parse(b: &[u8]) -> rehost::Result<BootSector> {
    BootSector::parse(b, 64 << 20, &Ctx::new("t.ntfs", Layer::Ntfs))
}

#[test]
fn cluster_sizes_from_512_bytes_to_2_mib() {
    for (bps, spc, cluster) in [
        (512u16, 1u8, 512u32),
        (512, 8, 4096),
        (512, 0x80, 64 << 10),
        (512, 0xF8, 128 << 10),
        (512, 0xF7, 256 << 10),
        (512, 0xF6, 512 << 10),
        (512, 0xF5, 1 << 20),
        (512, 0xF4, 2 << 20),
        (4096, 1, 4096),
        (4096, 0x10, 64 << 10),
        (4096, 0xF9, 512 << 10),
        (4096, 0xF7, 2 << 20),
    ] {
        let b = parse(&sector(bps, spc, 0xF6, 0xF4))
            .unwrap_or_else(|e| panic!("{bps}-byte sectors, {spc:#x}: {e}"));
        assert_eq!(b.cluster_size, cluster, "{bps}-byte sectors, {spc:#x}");
        assert_eq!(b.record_size, 1024, "{spc:#x}");
        assert_eq!(b.index_record_size, 4096, "{spc:#x}");
        assert_eq!(
            b.total_clusters(),
            (64u64 << 20) / cluster as u64,
            "{bps}-byte sectors, {spc:#x}"
        );
    }
}

#[test]
fn sizes_no_format_has_are_errors() {
    // Clusters over 2 MiB (0xF3 on 512-byte sectors, 0xF4 on 4096-byte ones), a sectors
    // per cluster byte that is not a power of two, a record of one 2 MiB cluster.
    for (bps, spc, rec) in [
        (512u16, 0xF3u8, 0xF6u8),
        (4096, 0xF4, 0xF6),
        (512, 0x81, 0xF6),
        (512, 0x03, 0xF6),
        (512, 0, 0xF6),
        (512, 0xF4, 1),
    ] {
        let e = parse(&sector(bps, spc, rec, 0xF4)).unwrap_err();
        assert!(e.to_string().contains("t.ntfs"), "{e}");
    }
}
