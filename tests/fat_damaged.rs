//! Damaged FAT volumes (the fixture's EFI system partition): loops in cluster chains and in
//! the directory tree, short chains and broken boot sectors give errors or bounded answers.

mod common;

use rehost::disk::{Memory, ReadAt};
use rehost::fs::FileSystem;
use rehost::volume::Content;
use rehost::{Ctx, Layer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The FAT32 ESP of the GPT fixture, and where its structures are.
struct Esp {
    bytes: Vec<u8>,
    fat: usize,
    data: usize,
    cluster: usize,
    root: u32,
}

impl Esp {
    fn load() -> Esp {
        let disk = std::fs::read(common::disk_fixture("gpt.raw")).unwrap();
        let bytes = disk[1 << 20..(1 << 20) + (34 << 20)].to_vec();
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
        let bps = u16_at(11);
        let spc = bytes[13] as usize;
        let reserved = u16_at(14);
        let fats = bytes[16] as usize;
        let fat_size = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) as usize;
        let root = u32::from_le_bytes(bytes[44..48].try_into().unwrap());
        Esp {
            fat: reserved * bps,
            data: (reserved + fats * fat_size) * bps,
            cluster: spc * bps,
            root,
            bytes,
        }
    }

    fn at(&self, cluster: u32) -> usize {
        self.data + (cluster as usize - 2) * self.cluster
    }

    /// (offset of the directory entry, first cluster) of the 8.3 `name` in directory `dir`.
    fn entry(&self, dir: u32, name: &[u8; 11]) -> (usize, u32) {
        let base = self.at(dir);
        for i in 0..self.cluster / 32 {
            let o = base + 32 * i;
            if &self.bytes[o..o + 11] == name {
                let hi = u16::from_le_bytes([self.bytes[o + 20], self.bytes[o + 21]]) as u32;
                let lo = u16::from_le_bytes([self.bytes[o + 26], self.bytes[o + 27]]) as u32;
                return (o, hi << 16 | lo);
            }
        }
        panic!("{} not found", String::from_utf8_lossy(name));
    }

    fn set_fat(&mut self, cluster: u32, value: u32) {
        let o = self.fat + 4 * cluster as usize;
        self.bytes[o..o + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn open(&self) -> rehost::Result<FileSystem> {
        let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("esp.img", self.bytes.clone()));
        FileSystem::open(dev, Content::Fat32, &Ctx::new("esp.img", Layer::Volume))
    }
}

fn walk_all(fs: &FileSystem) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut errors = Vec::new();
    fs.walk("", &mut |_, _| n += 1, &mut |p, e| {
        errors.push(format!("{p}: {e}"))
    });
    (n, errors)
}

#[test]
fn the_intact_esp_reads() {
    let esp = Esp::load();
    let fs = esp.open().unwrap();
    let (n, errors) = walk_all(&fs);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        n, 7,
        "EFI, Microsoft, Boot, BCD, bootmgfw.efi, Boot, bootx64.efi"
    );
}

#[test]
fn a_directory_whose_chain_loops_is_an_error() {
    if common::bounded::reran_in_child("a_directory_whose_chain_loops_is_an_error") {
        return;
    }
    let mut esp = Esp::load();
    let (_, efi) = esp.entry(esp.root, b"EFI        ");
    let (_, boot) = esp.entry(efi, b"BOOT       ");
    esp.set_fat(boot, boot);
    // No end-of-directory entry in the cluster: free slots marked deleted instead, so that
    // a reader must follow the chain (back into the same cluster).
    let base = esp.at(boot);
    for i in 0..esp.cluster / 32 {
        if esp.bytes[base + 32 * i] == 0 {
            esp.bytes[base + 32 * i] = 0xE5;
        }
    }
    let fs = esp.open().unwrap();
    let started = Instant::now();
    let e = fs.read_dir("EFI/Boot").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        e.to_string().contains("esp.img: fat at EFI/Boot") && e.to_string().contains("loops"),
        "{e}"
    );
}

#[test]
fn a_directory_that_contains_its_ancestor_stops() {
    if common::bounded::reran_in_child("a_directory_that_contains_its_ancestor_stops") {
        return;
    }
    let mut esp = Esp::load();
    let (_, efi) = esp.entry(esp.root, b"EFI        ");
    let (o, _) = esp.entry(efi, b"BOOT       ");
    // EFI/Boot now names the EFI directory itself.
    esp.bytes[o + 20..o + 22].copy_from_slice(&((efi >> 16) as u16).to_le_bytes());
    esp.bytes[o + 26..o + 28].copy_from_slice(&(efi as u16).to_le_bytes());
    let fs = esp.open().unwrap();
    let started = Instant::now();
    let (n, _) = walk_all(&fs);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(n < 10_000, "{n} entries");
}

#[test]
fn a_file_whose_chain_ends_early_is_an_error_not_short_data() {
    if common::bounded::reran_in_child("a_file_whose_chain_ends_early_is_an_error_not_short_data") {
        return;
    }
    let mut esp = Esp::load();
    let (_, efi) = esp.entry(esp.root, b"EFI        ");
    let (_, boot) = esp.entry(efi, b"BOOT       ");
    let (_, file) = esp.entry(boot, b"BOOTX64 EFI");
    esp.set_fat(file, 0x0FFF_FFFF);
    let fs = esp.open().unwrap();
    let e = fs
        .copy_to("EFI/Boot/bootx64.efi", "", &mut Vec::new())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("cluster chain ends after 512 of 102400 bytes"),
        "{e}"
    );
}

#[test]
fn broken_boot_sectors_are_refused() {
    if common::bounded::reran_in_child("broken_boot_sectors_are_refused") {
        return;
    }
    for (at, value) in [(11usize, 0u8), (13, 3), (16, 0), (14, 0)] {
        let mut esp = Esp::load();
        esp.bytes[at] = value;
        if at == 11 {
            esp.bytes[12] = 0;
        }
        let e = esp.open().err().expect("broken boot sector accepted");
        assert!(e.to_string().contains("esp.img: fat"), "byte {at}: {e}");
    }
}
