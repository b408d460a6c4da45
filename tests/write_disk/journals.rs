//! Journals that cannot be used (truncated, damaged, written for another image) are refused
//! with errors that say so, and nothing is written; a held lock keeps other writers out;
//! readers never write, not even beside an interrupted commit.

use super::*;
use std::path::PathBuf;

/// A dynamic VHD in `dir` with one commit in place: (image, SHA-256 before, after).
fn committed(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let raw = common::pattern(4 * MB, 90);
    let p = images::convert(dir, &raw, name, "vpc", "subformat=dynamic,force_size=on");
    let before = common::sha256_file(&p);
    let w = workload(&mut Rng(91), raw.len() as u64, 2 * MB as u64, 20, 1);
    stage(&p, true, &w)
        .commit(&CommitOptions::default())
        .unwrap();
    let after = common::sha256_file(&p);
    (p, before, after)
}

fn journal_of(p: &Path) -> PathBuf {
    disk::journal::journal_path(p)
}

/// `undo` and an open for writing both refuse, with `needle` in the message, and leave
/// image and journal as they were.
fn refused(p: &Path, needle: &str) {
    let (img, jrn) = (common::sha256_file(p), common::sha256_file(&journal_of(p)));
    let e = disk::undo(p, None).unwrap_err().to_string();
    assert!(e.contains(needle) && e.contains("rehost-undo"), "undo: {e}");
    let e = disk::open_for_write(p, &WriteOptions::in_place())
        .err()
        .expect("opened for writing")
        .to_string();
    assert!(e.contains(needle), "open: {e}");
    assert_eq!(common::sha256_file(p), img);
    assert_eq!(common::sha256_file(&journal_of(p)), jrn);
}

#[test]
fn damaged_journals_are_refused() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p, _, _) = committed(dir.path(), "d.vhd");
    let good = std::fs::read(journal_of(&p)).unwrap();
    let put = |b: &[u8]| std::fs::write(journal_of(&p), b).unwrap();
    put(&good[..good.len() / 2]);
    refused(&p, "truncated");
    put(&good[..50]);
    refused(&p, "truncated");
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 100] ^= 1; // a saved byte
    put(&bad);
    refused(&p, "checksum of generation 0 does not match");
    let mut bad = good.clone();
    bad[20] ^= 1; // the header
    put(&bad);
    refused(&p, "header's checksum");
    let mut bad = good.clone();
    bad[n - 5] ^= 1; // the completion marker
    put(&bad);
    refused(&p, "marker of generation 0 is damaged");
    put(b"#!/bin/sh\necho this is not a journal\n");
    refused(&p, "not a rehost undo journal");
    // Back to the real journal: undo works.
    put(&good);
    disk::undo(&p, None).unwrap();
    let e = disk::undo(&p, None).unwrap_err().to_string();
    assert!(e.contains("nothing to undo"), "{e}");
}

/// A damaged journal's refusal says what the journal is, what is wrong, what its end still
/// says about the image, and what the user can do; moving it aside, as it says, lets the
/// image be written again, as it stands.
#[test]
fn a_damaged_journal_says_what_it_is_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.raw");
    std::fs::write(&p, common::pattern(MB, 8)).unwrap();
    let w = workload(&mut Rng(17), MB as u64, 64 * 1024, 10, 1);
    stage(&p, true, &w)
        .commit(&CommitOptions::default())
        .unwrap();
    let j = journal_of(&p);
    let good = std::fs::read(&j).unwrap();
    let said = |j: &[u8]| {
        std::fs::write(journal_of(&p), j).unwrap();
        let undo = disk::undo(&p, None).unwrap_err().to_string();
        let open = disk::open_for_write(&p, &WriteOptions::in_place())
            .err()
            .expect("opened for writing")
            .to_string();
        assert_eq!(undo, open);
        undo
    };
    let mut bad = good.clone();
    bad[20] ^= 1; // the header: the completion marker at the end is whole
    let e = said(&bad);
    let jn = j.display().to_string();
    for words in [
        "header's checksum",
        &format!("{jn} is the undo journal of {}", p.display()),
        "`rehost undo` can put them back",
        "will not undo",
        "last write finished",
        "keep a copy of the journal",
        "restore it from a backup",
        &format!("move the journal aside (mv '{jn}' '{jn}.damaged')"),
    ] {
        assert!(e.contains(words), "{words:?} not in: {e}");
    }
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 5] ^= 1; // the completion marker
    let e = said(&bad);
    assert!(e.contains("does not say whether"), "{e}");
    assert!(!e.contains("last write finished,"), "{e}");
    // Moved aside as it says: the image is written again, and undone to where it stood.
    std::fs::rename(&j, dir.path().join("d.raw.rehost-undo.damaged")).unwrap();
    let now = std::fs::read(&p).unwrap();
    let w = workload(&mut Rng(18), MB as u64, 64 * 1024, 3, 1);
    stage(&p, true, &w)
        .commit(&CommitOptions::default())
        .unwrap();
    disk::undo(&p, None).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), now);
}

#[test]
fn a_journal_beside_another_image_is_refused() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = "subformat=dynamic,force_size=on";
    let raw = common::pattern(4 * MB, 90);
    let a = images::convert(dir.path(), &raw, "a.vhd", "vpc", opts);
    // A clone of a as it was before the commit, and an image of other content.
    let clone = dir.path().join("clone.vhd");
    std::fs::copy(&a, &clone).unwrap();
    let other = images::convert(
        dir.path(),
        &common::pattern(4 * MB, 92),
        "other.vhd",
        "vpc",
        opts,
    );
    let w = workload(&mut Rng(91), raw.len() as u64, 2 * MB as u64, 20, 1);
    stage(&a, true, &w)
        .commit(&CommitOptions::default())
        .unwrap();
    for target in [&clone, &other] {
        std::fs::copy(journal_of(&a), journal_of(target)).unwrap();
        let sha = common::sha256_file(target);
        let e = disk::undo(target, None).unwrap_err().to_string();
        assert!(
            e.contains("belongs to another image") && e.contains("a.vhd"),
            "{}: {e}",
            target.display()
        );
        assert_eq!(common::sha256_file(target), sha);
    }
    disk::undo(&a, None).unwrap();
    assert_eq!(common::sha256_file(&a), common::sha256_file(&clone));
}

/// A commit whose completion marker never reached the journal is rolled back by the next
/// open for writing; a reader before that sees the journal and writes nothing.
#[test]
fn an_interrupted_commit_is_rolled_back_by_the_next_writer_only() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p, before, _) = committed(dir.path(), "d.vhd");
    let j = journal_of(&p);
    let good = std::fs::read(&j).unwrap();
    std::fs::write(&j, &good[..good.len() - 32]).unwrap();
    let (img, jrn) = (common::sha256_file(&p), common::sha256_file(&j));
    let d = disk::open(&p, &Default::default()).unwrap();
    assert!(
        d.info().notes.iter().any(|n| n.contains("interrupted")),
        "{:?}",
        d.info().notes
    );
    drop(d);
    assert_eq!(
        (common::sha256_file(&p), common::sha256_file(&j)),
        (img, jrn)
    );
    // A writer of a new image rolls it back too (it must read a whole image).
    let s = disk::open_for_write(&p, &WriteOptions::new_image()).unwrap();
    let r = s.recovery().expect("a rollback");
    assert!(!r.finished_undo && r.bytes_restored > 0);
    drop(s);
    assert_eq!(common::sha256_file(&p), before);
    assert!(!j.exists());
    // A journal left half written by a commit killed before it was in place is removed.
    let partial = PathBuf::from(format!("{}.partial", j.display()));
    std::fs::write(&partial, b"RHUNDO\r\n half").unwrap();
    let s = disk::open_for_write(&p, &WriteOptions::in_place()).unwrap();
    assert!(s.recovery().is_none());
    drop(s);
    assert!(!partial.exists());
    assert_eq!(common::sha256_file(&p), before);
}

#[test]
fn a_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.raw");
    std::fs::write(&p, common::pattern(MB, 5)).unwrap();
    let locked = |r: Result<disk::WriteSession, rehost::Error>| {
        let e = r.err().expect("a second writer").to_string();
        assert!(e.contains("locked by another rehost process"), "{e}");
    };
    let a = disk::open_for_write(&p, &WriteOptions::in_place()).unwrap();
    locked(disk::open_for_write(&p, &WriteOptions::in_place()));
    locked(disk::open_for_write(&p, &WriteOptions::new_image()));
    let e = disk::undo(&p, None).unwrap_err().to_string();
    assert!(e.contains("locked"), "{e}");
    // Readers take no lock.
    assert!(disk::open(&p, &Default::default()).is_ok());
    drop(a);
    // Writers of new images share the source; a writer in place waits for them.
    let b = disk::open_for_write(&p, &WriteOptions::new_image()).unwrap();
    let c = disk::open_for_write(&p, &WriteOptions::new_image()).unwrap();
    locked(disk::open_for_write(&p, &WriteOptions::in_place()));
    b.overlay().write_at(10, b"b").unwrap();
    c.overlay().write_at(10, b"c").unwrap();
    let (nb, nc) = (dir.path().join("b.raw"), dir.path().join("c.raw"));
    b.commit_to(&nb, &CommitOptions::default()).unwrap();
    c.commit_to(&nc, &CommitOptions::default()).unwrap();
    assert_eq!(std::fs::read(&nb).unwrap()[10], b'b');
    assert_eq!(std::fs::read(&nc).unwrap()[10], b'c');
    // An output into a directory that is not there names the directory.
    let d = disk::open_for_write(&p, &WriteOptions::new_image()).unwrap();
    let e = d
        .commit_to(&dir.path().join("gone/new.raw"), &CommitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("there is no directory") && e.contains("gone"),
        "{e}"
    );
    assert!(!e.contains("rehost-partial"), "{e}");
    // An output never overwrites a file.
    let d = disk::open_for_write(&p, &WriteOptions::new_image()).unwrap();
    let e = d
        .commit_to(&nb, &CommitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("output exists"), "{e}");
    // A session for a new image does not commit in place.
    let d = disk::open_for_write(&p, &WriteOptions::new_image()).unwrap();
    d.overlay().write_at(0, b"x").unwrap();
    assert!(d.commit(&CommitOptions::default()).is_err());
}

/// Seeded mutations of a real journal: flipped bytes anywhere, and header fields (counts,
/// lengths) set to anything with the header's checksum made right again, so that the checks
/// behind it are reached. Reading never panics or hangs, and whatever is refused leaves the
/// image alone.
#[test]
fn mutated_journals_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.raw");
    std::fs::write(&p, common::pattern(MB, 8)).unwrap();
    let w = workload(&mut Rng(17), MB as u64, 64 * 1024, 10, 1);
    stage(&p, true, &w)
        .commit(&CommitOptions::default())
        .unwrap();
    let good = std::fs::read(journal_of(&p)).unwrap();
    let image = std::fs::read(&p).unwrap();
    let mut rng = Rng(0xbad);
    let start = std::time::Instant::now();
    for round in 0..400 {
        let mut j = good.clone();
        if round % 2 == 0 {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(j.len() as u64) as usize;
                j[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                j.truncate(rng.below(j.len() as u64) as usize);
            }
        } else {
            let field = 16 + 8 * rng.below(5) as usize;
            let v = match rng.below(3) {
                0 => rng.next(),
                1 => rng.below(1 << 20),
                _ => u64::MAX - rng.below(8),
            };
            j[field..field + 8].copy_from_slice(&v.to_le_bytes());
            let name_len = u32::from_le_bytes(j[60..64].try_into().unwrap()) as usize;
            let mut crc = crc32c::crc32c(&j[..92]);
            crc = crc32c::crc32c_append(crc, &j[96..96 + name_len]);
            j[92..96].copy_from_slice(&crc.to_le_bytes());
        }
        std::fs::write(journal_of(&p), &j).unwrap();
        let _ = disk::journal::read(&p);
        if let Err(e) = disk::undo(&p, None) {
            assert!(
                std::fs::read(&p).unwrap() == image,
                "round {round}: a refused undo wrote: {e}"
            );
        } else {
            // Only a journal whose damage spared what undo uses may work; then it restores.
            std::fs::write(&p, &image).unwrap();
        }
    }
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
}
