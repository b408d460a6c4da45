//! Damaged volumes: random bytes over the MFT records and index blocks the writer reads
//! and changes, then a few operations. Each may fail, with an error; none may panic or
//! hang, an operation that fails stages nothing, and none writes what the reader, reading
//! it back, finds broken.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use common::Rng;
use harness::Staged;
use rehost::disk::WriteAt;
use rehost::fs::ntfs::write::WriteOptions;

/// One operation on a writer.
type Op = dyn Fn(&mut rehost::fs::ntfs::write::Writer) -> rehost::Result<()>;

#[test]
fn random_damage_gives_errors_not_panics() {
    if common::bounded::reran_in_child("random_damage_gives_errors_not_panics") {
        return;
    }
    let image = common::disk_fixture("bare.raw");
    // Where the fixture keeps what the operations below touch: the MFT (cluster 4 on), the
    // index blocks of /many, the $Bitmap.
    let clean = Staged::open(&image, 0);
    let n = clean.reader();
    let mft = n.file(0).unwrap();
    let mft_runs = mft
        .stream_desc(0x80, "", n.ctx(), "$MFT")
        .unwrap()
        .unwrap()
        .runs;
    let many = n.lookup("many").unwrap();
    let ia_runs = many
        .stream_desc(0xA0, "$I30", n.ctx(), "many")
        .unwrap()
        .unwrap()
        .runs;
    // The records of the files and directories the operations use, and /many's blocks.
    let paths = [
        "",
        "many",
        "sizes",
        "sizes/1m5.bin",
        "sizes/4097.bin",
        "Windows/System32/drivers",
        "many/file-0400-with-a-long-name-to-fill-the-index-blocks.txt",
        "many/file-0100-with-a-long-name-to-fill-the-index-blocks.txt",
    ];
    let mft_at = |rec: u64| {
        let off = rec * 1024;
        let r = mft_runs
            .iter()
            .find(|r| r.vcn * 4096 <= off && off < (r.vcn + r.len) * 4096)
            .unwrap();
        r.lcn.unwrap() * 4096 + off - r.vcn * 4096
    };
    let mut regions: Vec<(u64, u64)> = [0u64, 3, 6]
        .into_iter()
        .chain(paths.iter().map(|p| n.lookup(p).unwrap().record))
        .map(|rec| (mft_at(rec), 1024))
        .collect();
    regions.extend(
        ia_runs
            .iter()
            .map(|r| (r.lcn.unwrap() * 4096, r.len * 4096)),
    );
    let mut rng = Rng(0xda3a9e);
    let mut outcomes = [0usize; 2];
    for round in 0..400 {
        let staged = Staged::open(&image, 0);
        for _ in 0..1 + rng.below(6) {
            let (start, len) = regions[rng.below(regions.len() as u64) as usize];
            // Damage a record or block where the writer will look: its first sector
            // (headers, first attributes or entries) or anywhere in it.
            let at = start
                + if rng.below(2) == 0 {
                    rng.below(len / 1024) * 1024 + rng.below(512)
                } else {
                    rng.below(len)
                };
            let n = 1 + rng.below(16) as usize;
            let bytes = rng.bytes(n);
            staged
                .dev
                .write_at(at.min(start + len - n as u64), &bytes)
                .unwrap();
        }
        let damaged = staged.overlay.extents();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut w = match staged.writer(WriteOptions::default()) {
                Ok(w) => w,
                Err(_) => return 0,
            };
            let mut ok = 0;
            let ops: [&Op; 8] = [
                &|w| {
                    w.create("/many/new-entry-with-a-name.txt", b"new")
                        .map(|_| ())
                },
                &|w| w.delete("/many/file-0400-with-a-long-name-to-fill-the-index-blocks.txt"),
                &|w| {
                    w.rename(
                        "/many/file-0100-with-a-long-name-to-fill-the-index-blocks.txt",
                        "/moved.txt",
                    )
                },
                &|w| w.replace("/sizes/1m5.bin", &[5u8; 70_000]),
                &|w| w.set_len("/sizes/4097.bin", 900_000),
                &|w| {
                    w.create("/Windows/System32/drivers/new.sys", &[1u8; 20_000])
                        .map(|_| ())
                },
                &|w| w.mkdir("/many/new-directory").map(|_| ()),
                &|w| {
                    w.create("/many/new-directory/inside.sys", &[2u8; 9_000])
                        .map(|_| ())
                },
            ];
            for op in ops {
                let before = staged.overlay.extents();
                match op(&mut w) {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        // The writer refuses damage before it writes: the reader, reading
                        // back, never finds what it wrote broken.
                        assert!(
                            !e.to_string().contains("reading back"),
                            "round {round}: {e}"
                        );
                        let same = staged.overlay.extents() == before;
                        assert!(same, "round {round}: a failed operation staged bytes ({e})");
                    }
                }
            }
            ok
        }));
        match result {
            Ok(ok) => outcomes[(ok == 8) as usize] += 1,
            Err(_) => panic!(
                "round {round} panicked; damage: {:?}",
                damaged
                    .iter()
                    .map(|(o, b)| (o, b.len()))
                    .collect::<Vec<_>>()
            ),
        }
    }
    eprintln!(
        "{} rounds with some refusal or error, {} where every operation worked",
        outcomes[0], outcomes[1]
    );
    assert!(
        outcomes[0] > 20,
        "the damage was noticed in only {} rounds",
        outcomes[0]
    );
}
