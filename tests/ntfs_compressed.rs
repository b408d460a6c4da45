//! LZNT1-compressed files end to end: a volume whose root is marked compressed (mkntfs -C),
//! files written into it by ntfs-3g's compressor, read back by `rehost cat` and compared
//! with the sources, icat and ntfscat.

mod common;

use rehost::disk;
use rehost::fs::ntfs::Ntfs;
use rehost::{Ctx, Layer};
use std::process::Command;

#[test]
fn compressed_files_read_back_exactly() {
    for tool in ["mkntfs", "ntfscp", "icat", "ntfscat", "fls"] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("compressed.ntfs");
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    common::run(
        Command::new("mkntfs")
            .args(["-F", "-Q", "-q", "-C", "-c", "4096"])
            .arg(&vol),
    );
    let text: Vec<u8> = (0..20000u32)
        .flat_map(|i| format!("line {} of compressible text\n", i % 97).into_bytes())
        .collect();
    let mut mixed = vec![0u8; 70000];
    mixed.extend(common::pattern(30000, 3));
    mixed.extend(b"abc".repeat(30000));
    mixed.extend(vec![0u8; 5000]);
    let files: [(&str, Vec<u8>); 4] = [
        ("text.bin", text),
        ("random.bin", common::pattern(150_000, 9)),
        ("zeros.bin", vec![0u8; 200_000]),
        ("mixed.bin", mixed),
    ];
    for (name, data) in &files {
        let src = dir.path().join(name);
        std::fs::write(&src, data).unwrap();
        common::run(
            Command::new("ntfscp")
                .arg("-q")
                .arg(&vol)
                .arg(&src)
                .arg(format!("/{name}")),
        );
    }
    let d = disk::open(&vol, &Default::default()).unwrap();
    let n = Ntfs::open(d.reader(), Ctx::new("compressed.ntfs", Layer::Ntfs)).unwrap();
    let listing = String::from_utf8(common::run(Command::new("fls").arg(&vol))).unwrap();
    let mut compressed = 0;
    for (name, data) in &files {
        let f = n.lookup(name).unwrap();
        if n.data(&f, "").unwrap().desc().is_compressed() {
            compressed += 1;
        }
        let ours = common::run(
            Command::new(env!("CARGO_BIN_EXE_rehost"))
                .arg("cat")
                .arg(&vol)
                .arg(name),
        );
        common::assert_same_bytes(&ours, data, &format!("{name} against its source"));
        let inode = listing
            .lines()
            .find(|l| l.ends_with(&format!("\t{name}")))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(|i| i.trim_end_matches(':').to_string())
            .unwrap();
        common::assert_same_bytes(
            &ours,
            &common::icat(&vol, 0, &inode),
            &format!("{name} against icat"),
        );
        let theirs = common::run(Command::new("ntfscat").arg(&vol).arg(format!("/{name}")));
        common::assert_same_bytes(&ours, &theirs, &format!("{name} against ntfscat"));
    }
    assert!(
        compressed >= 3,
        "only {compressed} of the files are stored compressed"
    );
}
