use super::*;
use crate::input::gather;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[test]
fn k_of_n_reads_only_with_k_below_n() {
    assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
    assert_eq!(" 0 / 1 ".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
    for bad in ["4/4", "0/0", "1", "a/4", "-1/4", "1/4/2", ""] {
        let e = bad.parse::<Shard>().unwrap_err();
        assert!(e.to_string().contains("give K/N"), "{bad}: {e}");
    }
    assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
}

#[test]
fn the_hash_of_a_key_is_fixed_for_good() {
    // SHA-256's first 8 bytes, big-endian, modulo N: computed outside rehost. A change
    // here would move the images of a run that is resumed across versions.
    for (key, n, want) in [
        ("fleet/ws2019-000.vhdx", 4, 1),
        ("fleet/ws2019-000.vhdx", 7, 0),
        ("a.vhd", 7, 4),
        ("b.vhd", 4, 3),
        ("c.vhd", 4, 2),
        ("line 7", 7, 2),
        ("/abs/x.img", 4, 2),
    ] {
        assert_eq!(Shard::of_key(key, n), want, "{key} of {n}");
    }
    assert_eq!(Shard::of_key("anything", 1), 0);
    assert_eq!(Shard::of_key("anything", 0), 0);
}

#[test]
fn the_shards_of_a_fleet_are_disjoint_and_cover_it() {
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("site-{}/vm-{i}.vhdx", i % 13))
        .collect();
    for n in 1..=7u64 {
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut sizes = vec![0usize; n as usize];
        for k in 0..n {
            let shard = Shard::new(k, n).unwrap();
            for key in &keys {
                let item = Item {
                    key: key.clone(),
                    ..Item::default()
                };
                if shard.takes(&item) {
                    assert!(seen.insert(key, k).is_none(), "{key} in two shards of {n}");
                    sizes[k as usize] += 1;
                }
            }
        }
        assert_eq!(seen.len(), keys.len(), "every key in a shard of {n}");
        let fair = keys.len() / n as usize;
        for s in sizes {
            assert!(s * 10 > fair * 7 && s * 10 < fair * 13, "{s} of {fair}");
        }
    }
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn slurm_and_kubernetes_give_the_shard() {
    let s = |index, count| Shard { index, count };
    assert_eq!(Shard::from_env(env(&[])), Ok(None));
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ];
    assert_eq!(
        Shard::from_env(env(&slurm)),
        Ok(Some((s(2, 4), Origin::Slurm)))
    );
    // --array=1-8: task 1 is shard 0, task 8 shard 7.
    for (id, want) in [("1", 0), ("8", 7)] {
        let v = [
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ];
        assert_eq!(Shard::from_env(env(&v)).unwrap().unwrap().0, s(want, 8));
    }
    // --array=0-30:10: tasks 0, 10, 20, 30 are shards 0 to 3.
    let stepped = |id| {
        Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "10"),
        ]))
    };
    assert_eq!(stepped("30").unwrap().unwrap().0, s(3, 4));
    assert!(matches!(stepped("15"), Err(ShardError::Uneven { .. })));
    // --array=2,5,9: Slurm says step 1, and task 9 cannot be shard 7 of 3.
    let e = Shard::from_env(env(&[
        ("SLURM_ARRAY_TASK_ID", "9"),
        ("SLURM_ARRAY_TASK_MIN", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("uneven ids"), "{e}");
    let e = Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "2")])).unwrap_err();
    assert!(e.to_string().contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
    let e = Shard::from_env(env(&[
        ("SLURM_ARRAY_TASK_ID", "x"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("not a number"), "{e}");

    let k8s = [("JOB_COMPLETION_INDEX", "3"), ("REHOST_SHARD_COUNT", "5")];
    assert_eq!(
        Shard::from_env(env(&k8s)),
        Ok(Some((s(3, 5), Origin::Kubernetes)))
    );
    let e = Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap_err();
    assert!(e.to_string().contains("Job's completions"), "{e}");
    let e = Shard::from_env(env(&[
        ("JOB_COMPLETION_INDEX", "5"),
        ("REHOST_SHARD_COUNT", "5"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("5/5"), "{e}");
}

/// A manifest and its images at `root` (a mount point of the same storage).
fn fleet_at(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root.join("images")).unwrap();
    for n in 0..20 {
        std::fs::write(root.join(format!("images/vm-{n}.vhd")), b"x").unwrap();
    }
    let mut csv = String::from("image,target\n");
    for n in 0..20 {
        csv.push_str(&format!("images/vm-{n}.vhd,\n"));
    }
    // A duplicate under another spelling, a missing file, a row without an image.
    csv.push_str("./images//vm-3.vhd,\nimages/gone.vhd,\n,kvm-sata\n");
    std::fs::write(root.join("fleet.csv"), csv).unwrap();
    root.join("fleet.csv")
}

#[test]
fn every_row_lands_in_one_shard_wherever_the_storage_is_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("mnt/a"), dir.path().join("srv/b"));
    let (ma, mb) = (fleet_at(&a), fleet_at(&b));
    let items_a = gather(&[], Some(&ma), std::io::empty()).unwrap();
    let items_b = gather(&[], Some(&mb), std::io::empty()).unwrap();
    assert_eq!(items_a.len(), 23);
    let keys = |items: &[Item]| items.iter().map(|i| i.key.clone()).collect::<Vec<_>>();
    assert_eq!(
        keys(&items_a),
        keys(&items_b),
        "the same keys on both mounts"
    );
    assert_eq!(
        items_a[20].key, "images/vm-3.vhd",
        "written as the same file"
    );
    assert_eq!(
        items_a[22].key, "line 24",
        "a row without an image: its line"
    );
    let mut rows = Vec::new();
    for k in 0..3 {
        let shard = Shard::new(k, 3).unwrap();
        let (sa, sb) = (shard.select(items_a.clone()), shard.select(items_b.clone()));
        let idx = |s: &[Item]| s.iter().map(|i| i.index).collect::<Vec<_>>();
        assert_eq!(idx(&sa), idx(&sb));
        rows.extend(idx(&sa));
    }
    rows.sort();
    assert_eq!(rows, (0..23).collect::<Vec<_>>(), "each row once");
    // The duplicate and the missing file are marked in whichever shard runs them.
    assert!(items_a[20]
        .problem
        .as_ref()
        .unwrap()
        .contains("the same file as"));
    assert!(items_a[21].problem.is_some() && items_a[22].problem.is_some());
}

#[test]
fn a_directory_keys_its_images_below_it_and_arguments_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("fleet");
    std::fs::create_dir_all(d.join("x")).unwrap();
    std::fs::write(d.join("x/one.vhd"), b"x").unwrap();
    let items = gather(
        &[d.clone(), PathBuf::from("./rel//two.vhdx")],
        None,
        "/abs/three.img\n".as_bytes(),
    )
    .unwrap();
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["x/one.vhd", "rel/two.vhdx"]);
    let items = gather(&[PathBuf::from("-")], None, "/abs/three.img\n".as_bytes()).unwrap();
    assert_eq!(items[0].key, "/abs/three.img");
}
