//! A file whose attributes overflow its MFT record: ntfs-3g moves them into extension
//! records and writes an `$ATTRIBUTE_LIST`. Every stream must read back as icat reads it.

mod common;

use rehost::disk::{self, ReadAt};
use rehost::fs::ntfs::Ntfs;
use rehost::{Ctx, Layer};
use sha2::{Digest, Sha256};
use std::process::Command;

#[test]
fn streams_in_extension_records_read_like_icat() {
    for tool in ["mkntfs", "ntfscp", "fls", "icat"] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("al.ntfs");
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    common::run(
        Command::new("mkntfs")
            .args(["-F", "-Q", "-q", "-c", "4096"])
            .arg(&vol),
    );
    let main = dir.path().join("main");
    std::fs::write(&main, b"the unnamed stream").unwrap();
    common::run(
        Command::new("ntfscp")
            .arg("-q")
            .arg(&vol)
            .arg(&main)
            .arg("/many.txt"),
    );
    for i in 1..=30u64 {
        let s = dir.path().join(format!("s{i}"));
        // Small streams stay resident; every fifth one is large enough to go non-resident.
        let len = if i % 5 == 0 { 9000 } else { 150 + i as usize };
        std::fs::write(&s, common::pattern(len, i)).unwrap();
        common::run(
            Command::new("ntfscp")
                .args(["-q", "-N", &format!("stream{i}")])
                .arg(&vol)
                .arg(&s)
                .arg("/many.txt"),
        );
    }
    let d = disk::open(&vol, &Default::default()).unwrap();
    let n = Ntfs::open(d.reader(), Ctx::new("al.ntfs", Layer::Ntfs)).unwrap();
    let f = n.lookup("many.txt").unwrap();
    assert!(
        f.attribute_list().is_some(),
        "ntfs-3g did not write an attribute list"
    );
    let extension_records: std::collections::BTreeSet<u64> = f
        .attributes
        .iter()
        .map(|a| a.record)
        .filter(|r| *r != f.record)
        .collect();
    assert!(
        !extension_records.is_empty(),
        "no attribute lives in an extension record"
    );
    let names = f.data_stream_names();
    assert_eq!(names.len(), 31, "{names:?}");
    // icat by attribute id, as fls names them.
    let listing = String::from_utf8(common::run(Command::new("fls").arg(&vol))).unwrap();
    let mut compared = 0;
    for line in listing.lines().filter(|l| l.contains("many.txt")) {
        let (head, path) = line.split_once(":\t").unwrap();
        let inode = head.split_whitespace().last().unwrap();
        let stream = path.split_once(':').map(|(_, s)| s).unwrap_or("");
        let theirs = common::icat(&vol, 0, inode);
        let s = n.data(&f, stream).unwrap();
        let mut ours = vec![0u8; s.size() as usize];
        s.read_at(0, &mut ours).unwrap();
        assert_eq!(
            format!("{:x}", Sha256::digest(&ours)),
            format!("{:x}", Sha256::digest(&theirs)),
            "stream {stream:?} ({inode})"
        );
        compared += 1;
    }
    assert_eq!(compared, 31);
}
