//! Log replay: crafted logs (several entries, a wrapped head, stale and broken sequences,
//! zero descriptors) replayed in memory and compared with a model, with the same updates
//! written into a copy by the test, and with qemu-img after it replays the log itself; qemu's
//! own log entries; logs that cannot be replayed; hostile logs that must not hang.

use super::*;
use crate::common;
use std::time::Instant;

/// The LogGuid of the crafted logs.
const LOG_GUID: [u8; 16] = [0x99; 16];
const LOG_AT: usize = MB;
const SECTOR: usize = 4096;

/// One update of a log entry.
#[derive(Clone)]
pub enum Update {
    /// 4 KiB written at a file offset.
    Page(u64, Vec<u8>),
    /// Zeros over (offset, length).
    Zero(u64, u64),
}

/// The bytes of a log entry (its Tail given as a byte offset in the log).
pub fn entry(seq: u64, tail: u32, file_len: u64, updates: &[Update]) -> Vec<u8> {
    let desc_sectors = (64 + 32 * updates.len()).div_ceil(SECTOR);
    let pages = updates
        .iter()
        .filter(|u| matches!(u, Update::Page(..)))
        .count();
    let len = (desc_sectors + pages) * SECTOR;
    let mut e = vec![0u8; len];
    e[..4].copy_from_slice(b"loge");
    put32(&mut e, 8, len as u32);
    put32(&mut e, 12, tail);
    put64(&mut e, 16, seq);
    put32(&mut e, 24, updates.len() as u32);
    e[32..48].copy_from_slice(&LOG_GUID);
    put64(&mut e, 48, file_len);
    put64(&mut e, 56, file_len);
    let mut data = desc_sectors * SECTOR;
    for (i, u) in updates.iter().enumerate() {
        let d = 64 + 32 * i;
        match u {
            Update::Zero(offset, length) => {
                e[d..d + 4].copy_from_slice(b"zero");
                put64(&mut e, d + 8, *length);
                put64(&mut e, d + 16, *offset);
            }
            Update::Page(offset, page) => {
                e[d..d + 4].copy_from_slice(b"desc");
                e[d + 4..d + 8].copy_from_slice(&page[SECTOR - 4..]);
                e[d + 8..d + 16].copy_from_slice(&page[..8]);
                put64(&mut e, d + 16, *offset);
                e[data..data + SECTOR].copy_from_slice(page);
                e[data..data + 4].copy_from_slice(b"data");
                put32(&mut e, data + 4, (seq >> 32) as u32);
                put32(&mut e, data + SECTOR - 4, seq as u32);
                data += SECTOR;
            }
        }
        put64(&mut e, d + 24, seq);
    }
    reseal(&mut e, 0, len);
    e
}

/// Puts an entry at byte `at` of the log of `log_len` bytes at `log_offset`, wrapping.
pub fn place(f: &mut [u8], log_offset: usize, log_len: usize, at: usize, e: &[u8]) {
    for (i, s) in e.chunks(SECTOR).enumerate() {
        let o = log_offset + (at + i * SECTOR) % log_len;
        f[o..o + SECTOR].copy_from_slice(s);
    }
}

/// Sets the current header's log fields (LogGuid, LogVersion, LogLength, LogOffset).
pub fn set_log(f: &mut [u8], guid: [u8; 16], version: u16, len: u32, offset: u64) {
    let h = CURRENT_HEADER;
    f[h + 48..h + 64].copy_from_slice(&guid);
    f[h + 64..h + 66].copy_from_slice(&version.to_le_bytes());
    put32(f, h + 68, len);
    put64(f, h + 72, offset);
    reseal(f, h, 4096);
}

/// What the test expects a replay to do: the updates applied to the bytes of the file.
fn apply(f: &mut [u8], updates: &[Update]) {
    for u in updates {
        match u {
            Update::Page(o, p) => f[*o as usize..*o as usize + SECTOR].copy_from_slice(p),
            Update::Zero(o, l) => f[*o as usize..(*o + *l) as usize].fill(0),
        }
    }
}

/// Asks qemu to replay the log of a copy of `path` into the copy (it does so on a
/// read-write open) and returns the virtual disk it then reads.
fn qemu_replayed(path: &Path, dir: &Path) -> Vec<u8> {
    let copy = dir.join("replayed-by-qemu.vhdx");
    std::fs::copy(path, &copy).unwrap();
    let _ = Command::new("qemu-img")
        .args(["check", "-f", "vhdx", "-r", "leaks"])
        .arg(&copy)
        .output()
        .unwrap();
    qemu_raw(&copy, dir)
}

/// The active sequence wraps around the end of the log and holds a page write over the
/// BAT, a zero descriptor and a page write into a block; a stale older sequence, a newer
/// sequence whose tail is missing and an entry with a bad checksum are passed over.
#[test]
fn the_active_sequence_is_replayed_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, mut model) = dynamic(4, 60);
    let mut f = clean.clone();
    let len = f.len() as u64;
    let block = |i: u64| u64_at(&f, 2 * MB + 8 * i as usize) >> 20 << 20;
    let (b1, b2, b3) = (block(1), block(2), block(3));
    let bat_at = 2 * MB as u64;
    // Active: block 0 remapped to block 1's data; block 2's data zeroed; a page in block 3.
    let mut bat_page = f[bat_at as usize..bat_at as usize + SECTOR].to_vec();
    put64(&mut bat_page, 0, 6 | b1);
    let page: Vec<u8> = (0..SECTOR).map(|i| (i * 7 + 3) as u8).collect();
    let last: Vec<u8> = (0..SECTOR).map(|i| (i * 13 + 1) as u8).collect();
    let end = MB - SECTOR;
    // The last entry has a descriptor sector and two data sectors: it wraps to sector 0.
    let active = [
        (20, 251, vec![Update::Page(bat_at, bat_page)]),
        (21, 253, vec![Update::Zero(b2, MB as u64)]),
        (
            22,
            254,
            vec![
                Update::Page(b3 + 8192, page.clone()),
                Update::Page(b3 + end as u64, last.clone()),
            ],
        ),
    ];
    model.copy_within(MB..2 * MB, 0);
    model[2 * MB..3 * MB].fill(0);
    model[3 * MB + 8192..3 * MB + 8192 + SECTOR].copy_from_slice(&page);
    model[3 * MB + end..4 * MB].copy_from_slice(&last);
    let ruin = vec![Update::Zero(bat_at, SECTOR as u64)];
    let log_len = MB;
    let sec = |s: usize| (s * SECTOR) as u32;
    let mut replayed = f.clone();
    for (seq, at, updates) in &active {
        let e = entry(*seq, sec(251), len, updates);
        place(&mut f, LOG_AT, log_len, at * SECTOR, &e);
        apply(&mut replayed, updates);
    }
    // Stale: a complete older sequence; newest, but with a wrong checksum.
    for (seq, at, tail) in [(10u64, 1usize, 1usize), (11, 2, 1)] {
        let e = entry(seq, sec(tail), len, &ruin);
        place(&mut f, LOG_AT, log_len, at * SECTOR, &e);
    }
    let mut bad = entry(40, sec(120), len, &ruin);
    bad[100] ^= 1;
    place(&mut f, LOG_AT, log_len, 120 * SECTOR, &bad);
    set_log(&mut f, LOG_GUID, 0, log_len as u32, LOG_AT as u64);
    // qemu picks the run whose first entry has the highest sequence number and does not
    // check Tail fields; MS-VHDX wants the head's tail inside the sequence. So qemu sees
    // this log, and rehost also one with a newer entry whose tail names no entry.
    let for_qemu = write(dir.path(), "for-qemu.vhdx", &f);
    place(
        &mut f,
        LOG_AT,
        log_len,
        100 * SECTOR,
        &entry(30, sec(90), len, &ruin),
    );
    let dirty = write(dir.path(), "dirty.vhdx", &f);
    let before = common::sha256_file(&dirty);
    for p in [&dirty, &for_qemu] {
        let d = disk::open(p, &Default::default()).unwrap();
        assert!(
            d.info()
                .notes
                .iter()
                .any(|n| n.contains("log replayed in memory: 3 entries")),
            "{:?}",
            d.info().notes
        );
        common::assert_same_bytes(&common::read_all(&d), &model, "replayed log, model");
    }
    let ours = common::read_all(&disk::open(&dirty, &Default::default()).unwrap());
    let u = uncached(&dirty).unwrap();
    common::assert_same_bytes(&read_in_odd_pieces(&u), &model, "in odd pieces");
    assert_eq!(
        common::sha256_file(&dirty),
        before,
        "reading changed the image"
    );
    // The same updates written into a copy by the test, with the log cleared.
    set_log(&mut replayed, [0; 16], 0, log_len as u32, LOG_AT as u64);
    let p = write(dir.path(), "applied.vhdx", &replayed);
    let theirs = common::read_all(&disk::open(&p, &Default::default()).unwrap());
    common::assert_same_bytes(&ours, &theirs, "against the updates applied on disk");
    if common::have_tool("qemu-img") {
        common::assert_same_bytes(
            &ours,
            &qemu_replayed(&for_qemu, dir.path()),
            "against qemu-img's replay",
        );
    }
}

/// qemu-img writes its BAT updates through the log and leaves the entries behind, each
/// with its own LogGuid. Naming one of them in the header makes it the log to replay: an
/// old BAT page comes back, and rehost must read what qemu reads after replaying it.
#[test]
fn qemus_own_log_entries_replay_like_qemu() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = common::pattern(5 * MB, 70);
    let raw_path = write(dir.path(), "d.raw", &raw);
    let vhdx = dir.path().join("q.vhdx");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vhdx", "-o"])
            .arg("subformat=dynamic,block_size=1M")
            .arg(&raw_path)
            .arg(&vhdx),
    );
    let f = std::fs::read(&vhdx).unwrap();
    let cur = [64 * 1024, 128 * 1024]
        .into_iter()
        .max_by_key(|&h| u64_at(&f, h + 8))
        .unwrap();
    let (log_len, log_off) = (u32_at(&f, cur + 68) as usize, u64_at(&f, cur + 72) as usize);
    let guids: Vec<[u8; 16]> = (0..log_len / SECTOR)
        .map(|s| log_off + s * SECTOR)
        .filter(|&o| &f[o..o + 4] == b"loge")
        .map(|o| f[o + 32..o + 48].try_into().unwrap())
        .collect();
    assert!(guids.len() >= 2, "qemu left {} log entries", guids.len());
    let mut tried = 0;
    for g in [guids[0], guids[guids.len() / 2], guids[guids.len() - 1]] {
        let mut m = f.clone();
        m[cur + 48..cur + 64].copy_from_slice(&g);
        reseal(&mut m, cur, 4096);
        let p = write(dir.path(), "stale.vhdx", &m);
        let d = disk::open(&p, &Default::default()).unwrap();
        assert!(
            d.info().notes.iter().any(|n| n.contains("log replayed")),
            "{:?}",
            d.info().notes
        );
        let ours = common::read_all(&d);
        common::assert_same_bytes(&ours, &qemu_replayed(&p, dir.path()), "qemu's log");
        tried += 1;
    }
    assert_eq!(tried, 3);
}

/// An entry whose LastFileOffset is past the end of the file extends it: a block the
/// replayed BAT places there reads as zeros.
#[test]
fn a_replayed_log_extends_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, model) = dynamic(2, 85);
    let len = clean.len() as u64;
    let mut f = clean.clone();
    let mut bat_page = f[2 * MB..2 * MB + SECTOR].to_vec();
    put64(&mut bat_page, 0, 6 | len);
    let mut e = entry(9, 0, len, &[Update::Page(2 * MB as u64, bat_page)]);
    put64(&mut e, 56, len + 2 * MB as u64);
    let n = e.len();
    reseal(&mut e, 0, n);
    place(&mut f, LOG_AT, MB, 0, &e);
    set_log(&mut f, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    let d = disk::open(&write(dir.path(), "grown.vhdx", &f), &Default::default()).unwrap();
    let data = common::read_all(&d);
    assert!(
        data[..MB].iter().all(|&b| b == 0),
        "block 0 in the extension"
    );
    assert_eq!(data[MB..], model[MB..]);
    // Without the extension, the same BAT entry points past the end of the file.
    let mut f = clean.clone();
    let mut bat_page = f[2 * MB..2 * MB + SECTOR].to_vec();
    put64(&mut bat_page, 0, 6 | len);
    let e = entry(9, 0, len, &[Update::Page(2 * MB as u64, bat_page)]);
    place(&mut f, LOG_AT, MB, 0, &e);
    set_log(&mut f, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    let d = uncached(&write(dir.path(), "short.vhdx", &f)).unwrap();
    let mut b = [0u8; 512];
    let msg = d.read_at(0, &mut b).unwrap_err().to_string();
    assert!(
        msg.contains("BAT entry 0") && msg.contains("past the end"),
        "{msg}"
    );
}

#[test]
fn logs_that_cannot_be_replayed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, _) = dynamic(2, 80);
    let len = clean.len() as u64;
    let bat_page = clean[2 * MB..2 * MB + SECTOR].to_vec();
    let one = entry(5, 0, len, &[Update::Page(2 * MB as u64, bat_page)]);
    let refused = |name: &str, f: &[u8]| {
        let p = write(dir.path(), name, f);
        let before = common::sha256_file(&p);
        let msg = match disk::open(&p, &Default::default()) {
            Ok(_) => panic!("{name}: opened"),
            Err(e) => e.to_string(),
        };
        assert_eq!(common::sha256_file(&p), before);
        assert!(
            msg.contains(&format!("{name}: vhdx")) && msg.contains("log cannot be replayed"),
            "{name}: {msg}"
        );
        msg
    };
    let mut f = clean.clone();
    place(&mut f, LOG_AT, MB, 0, &one);
    set_log(&mut f, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    assert!(disk::open(&write(dir.path(), "ok.vhdx", &f), &Default::default()).is_ok());
    // The only entry with a bad checksum.
    let mut crc = f.clone();
    crc[LOG_AT + SECTOR + 100] ^= 0xFF;
    refused("crc.vhdx", &crc);
    // A log version other than 0.
    let mut ver = f.clone();
    set_log(&mut ver, LOG_GUID, 1, MB as u32, LOG_AT as u64);
    refused("version.vhdx", &ver);
    // A LogGuid no entry carries.
    let mut other = f.clone();
    set_log(&mut other, [0x42; 16], 0, MB as u32, LOG_AT as u64);
    refused("guid.vhdx", &other);
    // The log past the end of the file; a log not 1 MiB aligned.
    let mut past = f.clone();
    set_log(&mut past, LOG_GUID, 0, MB as u32, 64 * MB as u64);
    refused("past.vhdx", &past);
    let mut odd = f.clone();
    set_log(&mut odd, LOG_GUID, 0, MB as u32 + 4096, LOG_AT as u64);
    refused("odd.vhdx", &odd);
    // The file is shorter than the entry says it was when written.
    let mut cut = clean.clone();
    place(
        &mut cut,
        LOG_AT,
        MB,
        0,
        &entry(5, 0, len + 16 * MB as u64, &[]),
    );
    set_log(&mut cut, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    let msg = refused("cut.vhdx", &cut);
    assert!(msg.contains("truncated"), "{msg}");
    // A write past the end of the file and past the entry's LastFileOffset.
    let mut beyond = clean.clone();
    let e = entry(
        5,
        0,
        len,
        &[Update::Page(len + 16 * MB as u64, vec![1; SECTOR])],
    );
    place(&mut beyond, LOG_AT, MB, 0, &e);
    set_log(&mut beyond, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    let msg = refused("beyond.vhdx", &beyond);
    assert!(msg.contains("past its end"), "{msg}");
    // A page write far past any file, with a correct checksum: refused, no overflow.
    let mut far = clean.clone();
    let e = entry(5, 0, len, &[Update::Page(u64::MAX - 4095, vec![1; SECTOR])]);
    place(&mut far, LOG_AT, MB, 0, &e);
    set_log(&mut far, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    refused("far.vhdx", &far);
    let mut zero = clean.clone();
    let e = entry(5, 0, len, &[Update::Zero(u64::MAX - 4095, 8192)]);
    place(&mut zero, LOG_AT, MB, 0, &e);
    set_log(&mut zero, LOG_GUID, 0, MB as u32, LOG_AT as u64);
    refused("zero.vhdx", &zero);
}

/// A 16 MiB log with an entry header on every sector, each claiming the whole log, and a
/// 16 MiB log of 4096 chained one-sector entries whose head names a missing tail: both
/// are refused, quickly.
#[test]
fn hostile_logs_do_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, _) = dynamic(2, 90);
    let log_len = 16 * MB;
    let log_off = clean.len().div_ceil(MB) * MB;
    let mut f = clean.clone();
    f.resize(log_off + log_len, 0);
    let file_len = f.len() as u64;
    for s in 0..log_len / SECTOR {
        let h = &mut f[log_off + s * SECTOR..log_off + (s + 1) * SECTOR];
        h[..4].copy_from_slice(b"loge");
        put32(h, 8, log_len as u32);
        put64(h, 16, 1 + s as u64);
        h[32..48].copy_from_slice(&LOG_GUID);
    }
    set_log(&mut f, LOG_GUID, 0, log_len as u32, log_off as u64);
    let p = write(dir.path(), "headers.vhdx", &f);
    let t = Instant::now();
    let e = disk::open(&p, &Default::default()).err().expect("opened");
    assert!(e.to_string().contains("log cannot be replayed"), "{e}");
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    // A chain of 4095 one-sector entries, the last sector empty. With the head's tail at
    // sector 7 the sequence is complete (4088 entries); at the empty sector it is not.
    let n = log_len / SECTOR;
    for (tail, expect) in [(7, Some(n - 1 - 7)), (n - 1, None)] {
        f[log_off..log_off + log_len].fill(0);
        for s in 0..n - 1 {
            let t = if s == n - 2 { tail } else { 0 };
            let e = entry(1 + s as u64, (t * SECTOR) as u32, file_len, &[]);
            place(&mut f, log_off, log_len, s * SECTOR, &e);
        }
        let p = write(dir.path(), "chain.vhdx", &f);
        let t = Instant::now();
        match (disk::open(&p, &Default::default()), expect) {
            (Ok(d), Some(count)) => assert!(
                d.info()
                    .notes
                    .iter()
                    .any(|x| x.contains(&format!("replayed in memory: {count} entries"))),
                "{:?}",
                d.info().notes
            ),
            (Err(e), None) => assert!(e.to_string().contains("log cannot be replayed"), "{e}"),
            (Ok(_), None) => panic!("a sequence without its tail was replayed"),
            (Err(e), Some(_)) => panic!("{e}"),
        }
        assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    }
}
