use super::*;

fn boot_sector(path: &Path) {
    let mut b = vec![0u8; 4096];
    b[510] = 0x55;
    b[511] = 0xAA;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_directory_yields_its_images_by_extension_and_content_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    std::fs::write(d.join("a.VHDX"), b"x").unwrap();
    boot_sector(&d.join("sub/deeper/disk0"));
    std::fs::write(d.join("sub/notes.txt"), vec![1u8; 1024]).unwrap();
    boot_sector(&d.join("sub/x.vhd.rehost-undo"));
    boot_sector(&d.join(".hidden.img"));
    let items = gather(&[d.to_path_buf()], None, std::io::empty()).unwrap();
    let names: Vec<_> = items
        .iter()
        .map(|i| i.image().strip_prefix(d).unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [PathBuf::from("a.VHDX"), PathBuf::from("sub/deeper/disk0")]
    );
    assert!(items.iter().all(|i| i.problem.is_none()));
}

#[test]
fn manifest_rows_keep_their_place_with_their_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    boot_sector(&d.join("one.raw"));
    std::os::unix::fs::symlink(d.join("one.raw"), d.join("alias.raw")).unwrap();
    let csv = d.join("fleet.csv");
    std::fs::write(
        &csv,
        "image,target,skip,drivers,output\n\
         one.raw,kvm-sata,\"san-policy, crash-dump\",,\n\
         missing.vhdx,,,,\n\
         alias.raw,gcp,,,\n\
         \"\",,,,\n",
    )
    .unwrap();
    let items = gather(&[], Some(&csv), std::io::empty()).unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].row.target.as_deref(), Some("kvm-sata"));
    assert_eq!(items[0].row.skip, ["san-policy", "crash-dump"]);
    assert_eq!(items[0].row.drivers, None);
    assert!(items[0].problem.is_none(), "{:?}", items[0].problem);
    let p = |i: usize| items[i].problem.clone().unwrap_or_default();
    assert!(
        p(1).contains("line 3") && p(1).contains("No such file"),
        "{}",
        p(1)
    );
    assert!(
        p(2).contains("the same file as") && p(2).contains("line 2"),
        "{}",
        p(2)
    );
    assert!(p(3).contains("no image"), "{}", p(3));

    let jsonl = d.join("fleet.jsonl");
    std::fs::write(
        &jsonl,
        "{\"image\": \"one.raw\", \"skip\": [\"san-policy\"]}\n\n{\"image\": 3}\n",
    )
    .unwrap();
    let items = gather(&[], Some(&jsonl), std::io::empty()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].row.skip, ["san-policy"]);
    assert!(items[1].problem.as_deref().unwrap().contains("line 3"));
}

#[test]
fn standard_input_gives_paths_and_a_headless_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    boot_sector(&d.join("a.img"));
    let stdin = format!(
        "{}\n\n{}\n",
        d.join("a.img").display(),
        d.join("b.img").display()
    );
    let items = gather(&["-".into()], None, stdin.as_bytes()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].source, "standard input line 3");
    assert!(items[0].problem.is_none() && items[1].problem.is_some());
    let csv = d.join("bad.csv");
    std::fs::write(&csv, "path\nx\n").unwrap();
    assert!(gather(&[], Some(&csv), std::io::empty()).is_err());
}
