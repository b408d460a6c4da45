//! Many machines on an existing scheduler: a real one-node Slurm cluster
//! (`deploy/slurm/test/cluster.sh`) runs `deploy/slurm/fleet.sbatch` as a 4-task array job,
//! `rehost check` and then `rehost fix --in-place`, over a fleet of 200 copies of 20
//! fixtures (Windows 2000 to Server 2025, each with its fault, XP and Server 2003 for
//! Hyper-V generation 1, the others for a q35 KVM machine) and two rows that cannot run (a
//! missing file, a duplicate). The shards' ledgers, merged with `rehost ledger merge`,
//! hold every row exactly once and equal, image by image, the ledger of one process run
//! over fresh copies of the same fleet: the same status, verdicts, findings and changes.
//! Every fixed image then checks as booting; the one that cannot be fixed (Windows 2000
//! has no AHCI driver) says why.
//!
//! Needs Debian's slurm-wlm and munge, and root or `sudo -n` to start the daemons (the
//! jobs run as the user running the test): outside CI it skips without them, and says so;
//! in CI (`CI=1`) their absence fails it.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

/// The fixtures of the fleet, with the target each is checked and fixed for.
const FIXTURES: [(&str, &str); 20] = [
    ("vista-x86", "kvm-sata"),
    ("ws2016", "kvm-sata"),
    ("ws2019-ahci-off", "kvm-sata"),
    ("ws2019-bcdguid", "kvm-sata"),
    ("ws2019-filter", "kvm-sata"),
    ("ws2019-letter", "kvm-sata"),
    ("ws2019-newsig", "kvm-sata"),
    ("ws2019-override", "kvm-sata"),
    ("ws2019-san", "kvm-sata"),
    ("ws2019-winload", "kvm-sata"),
    ("ws2019-xen", "kvm-sata"),
    ("ws2025", "kvm-sata"),
    ("win11", "kvm-sata"),
    ("w2k-sp4", "kvm-sata"),
    ("xp-bootini", "hyperv-gen1"),
    ("xp-drvcache", "hyperv-gen1"),
    ("xp-mismatch", "hyperv-gen1"),
    ("xp-upkernel", "hyperv-gen1"),
    ("w2k3-restored", "hyperv-gen1"),
    ("w2k3-sp2", "hyperv-gen1"),
];

/// The one fixture no fix makes boot on its target, and what its check says why.
const NOT_FIXABLE: (&str, &str) = ("w2k-sp4", "Windows 2000 has no driver rehost knows");

const IMAGES: usize = 200;
const SHARDS: usize = 4;

/// How this test runs the cluster's daemons as root: directly when it is root, through
/// `sudo -n` when that works (the jobs then run as this user); `None` (and a skip, or a
/// failure in CI) when Slurm is missing or neither works.
fn slurm_ready() -> Option<Vec<&'static str>> {
    for tool in ["munged", "slurmctld", "slurmd", "sbatch", "sinfo"] {
        if !common::have_tool(tool) {
            return None;
        }
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return Some(vec![]);
    }
    let sudo = Command::new("sudo")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if sudo {
        return Some(vec!["sudo", "-n"]);
    }
    assert!(
        !common::in_ci(),
        "the Slurm test starts slurmctld and slurmd, which needs root or sudo without a password"
    );
    eprintln!("SKIP: the Slurm test needs root (or sudo -n) to start its cluster; it did not run");
    common::record_skip("root");
    None
}

/// A running test cluster, stopped (and its root-owned files removed) when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    root: Vec<&'static str>,
}

/// `cluster.sh ARG DIR`, as root.
fn cluster_sh(root: &[&str], arg: &str, dir: &Path) -> Command {
    let script = common::root().join("deploy/slurm/test/cluster.sh");
    let mut c = match root.split_first() {
        Some((sudo, args)) => {
            let mut c = Command::new(sudo);
            c.args(args).arg(script);
            c
        }
        None => Command::new(script),
    };
    c.arg(arg).arg(dir);
    c
}

impl Cluster {
    fn start(dir: &Path, root: Vec<&'static str>) -> Cluster {
        let out = cluster_sh(&root, "start", dir).output().unwrap();
        assert!(
            out.status.success(),
            "cluster.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Cluster {
            dir: dir.to_path_buf(),
            conf,
            root,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = cluster_sh(&self.root, "stop", &self.dir).status();
        let _ = match self.root.split_first() {
            Some((sudo, args)) => Command::new(sudo)
                .args(args)
                .args(["rm", "-rf"])
                .arg(&self.dir)
                .status()
                .map(|_| ()),
            None => std::fs::remove_dir_all(&self.dir),
        };
    }
}

/// Writes `bytes` to `to` leaving its zero blocks as holes (the fixtures are mostly
/// empty), and gives it `mtime`: every copy of a fixture has the same identity but its
/// path, and a fresh fleet the same identities as the last.
fn sparse_copy(bytes: &[u8], to: &Path, mtime: SystemTime) {
    let f = std::fs::File::create(to).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
    for (n, chunk) in bytes.chunks(64 << 10).enumerate() {
        if chunk.iter().any(|b| *b != 0) {
            f.write_all_at(chunk, (n as u64) << 16).unwrap();
        }
    }
    f.set_modified(mtime).unwrap();
}

/// The fleet under `dir`: `images/` and the manifest `fleet.csv`, whose rows are the
/// images, a missing file and a duplicate. Returns the manifest and, per row, the fixture
/// of its image (`None` for the two bad rows).
fn fleet(dir: &Path) -> (PathBuf, Vec<Option<&'static str>>) {
    let images = dir.join("images");
    if images.exists() {
        std::fs::remove_dir_all(&images).unwrap();
    }
    std::fs::create_dir_all(&images).unwrap();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut rows = vec![String::new(); IMAGES];
    let mut fixtures = vec![None; IMAGES];
    for (f, (name, target)) in FIXTURES.iter().enumerate() {
        let src = common::windows_image(name);
        let ext = src.extension().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&src).unwrap();
        for i in (f..IMAGES).step_by(FIXTURES.len()) {
            let rel = format!("images/{name}-{i:03}.{ext}");
            sparse_copy(&bytes, &dir.join(&rel), mtime);
            rows[i] = format!("{rel},{target}");
            fixtures[i] = Some(*name);
        }
    }
    let first = rows[0].clone();
    rows.push("images/missing.vhdx,kvm-sata".into());
    rows.push(format!("./{first}"));
    fixtures.extend([None, None]);
    let manifest = dir.join("fleet.csv");
    std::fs::write(&manifest, format!("image,target\n{}\n", rows.join("\n"))).unwrap();
    (manifest, fixtures)
}

fn rehost() -> Command {
    let mut c = common::rehost_command();
    // This process is no array task, whatever ran the tests.
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(v);
    }
    c
}

fn ran(what: &str, out: &Output, codes: &[i32]) {
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "{what}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One process: check, then fix in place, each row recorded in `ledger`.
fn single_process(manifest: &Path, ledger: &Path) {
    for args in [
        &["check", "--jsonl", "-q", "-j", "2"][..],
        &["fix", "--in-place", "--jsonl", "-q", "-j", "2"],
    ] {
        let out = rehost()
            .args(args)
            .arg("--manifest")
            .arg(manifest)
            .arg("--ledger")
            .arg(ledger)
            .output()
            .unwrap();
        // 1: the missing file and the duplicate.
        ran(args[0], &out, &[1]);
    }
}

/// What `sbatch --array=0-3 --wait fleet.sbatch ARGS` printed in each task's output.
fn array_job(cluster: &Cluster, dir: &Path, args: &[&str]) -> Vec<String> {
    let logs = dir.join(format!("logs-{}", args[0]));
    std::fs::create_dir_all(&logs).unwrap();
    let out = Command::new("sbatch")
        .env("SLURM_CONF", &cluster.conf)
        .env("REHOST", env!("CARGO_BIN_EXE_rehost"))
        .env("REHOST_LEDGERS", dir.join("ledgers"))
        .arg(format!("--array=0-{}", SHARDS - 1))
        .arg("--wait")
        .arg(format!("--output={}/%a.out", logs.display()))
        .arg(common::root().join("deploy/slurm/fleet.sbatch"))
        .args(args)
        .output()
        .unwrap();
    // The highest exit code of the tasks: 1 for the shard of a bad row, 3 for a shard
    // with an install that does not boot.
    ran(&format!("sbatch {args:?}"), &out, &[0, 1, 3]);
    (0..SHARDS)
        .map(|k| std::fs::read_to_string(logs.join(format!("{k}.out"))).unwrap())
        .collect()
}

/// An outcome as the comparison sees it: status, whether it wrote, the identity of the
/// bytes it started from, and its verdicts, findings and changes, sorted.
#[derive(Debug, PartialEq)]
struct Seen {
    status: String,
    committed: bool,
    before: Option<(i64, String)>,
    verdicts: Vec<String>,
    findings: Vec<String>,
    changes: Vec<String>,
}

/// Every outcome of `ledger` by command and row; each (command, row) must appear once.
fn outcomes(ledger: &Path) -> BTreeMap<(String, i64), (String, Seen)> {
    let db = rusqlite::Connection::open(ledger).unwrap();
    let details = |sql: &str, id: i64| -> Vec<String> {
        let mut st = db.prepare(sql).unwrap();
        let mut v: Vec<String> = st
            .query_map([id], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        v.sort();
        v
    };
    let mut st = db
        .prepare("SELECT id, command, row, image, status, committed, size, hash FROM outcomes")
        .unwrap();
    // Each outcome: its id, command, row, image, and its Seen before the details.
    type Head = (i64, String, i64, String, Seen);
    let rows: Vec<Head> = st
        .query_map([], |r| {
            let size: Option<i64> = r.get(6)?;
            let hash: Option<String> = r.get(7)?;
            let seen = Seen {
                status: r.get(4)?,
                committed: r.get(5)?,
                before: size.zip(hash),
                verdicts: vec![],
                findings: vec![],
                changes: vec![],
            };
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, seen))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for (id, command, row, image, head) in rows {
        let seen = Seen {
            verdicts: details(
                "SELECT install || '|' || target || '|' || coalesce(before, '') || '|' || \
                 verdict || '|' || coalesce(stop, '') FROM verdicts WHERE outcome = ?1",
                id,
            ),
            findings: details(
                "SELECT install || '|' || target || '|' || rule || '|' || \"case\" || '|' || \
                 severity || '|' || fixable || '|' || message FROM findings WHERE outcome = ?1",
                id,
            ),
            changes: details(
                "SELECT install || '|' || rule || '|' || kind || '|' || coalesce(file, '') || \
                 '|' || why FROM changes WHERE outcome = ?1",
                id,
            ),
            ..head
        };
        let old = out.insert((command.clone(), row), (image, seen));
        assert!(
            old.is_none(),
            "{}: {command} row {row} twice",
            ledger.display()
        );
    }
    out
}

#[test]
fn a_slurm_array_job_runs_each_image_once_as_one_process_would() {
    let Some(root) = slurm_ready() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let clock = Instant::now();
    let lap = |what: &str| {
        eprintln!(
            "slurm test: {what} at {:.1} s",
            clock.elapsed().as_secs_f64()
        )
    };

    // One process over the fleet, as the reference.
    let (manifest, fixtures) = fleet(dir);
    let rows = fixtures.len();
    let size: u64 = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| {
            use std::os::unix::fs::MetadataExt;
            e.unwrap().metadata().unwrap().blocks() * 512
        })
        .sum();
    lap(&format!(
        "{IMAGES} images made ({} MiB on disk)",
        size >> 20
    ));
    let single = dir.join("single.db");
    single_process(&manifest, &single);
    lap("one process checked and fixed them");

    // A fresh fleet, the same bytes at the same paths, through the array job.
    let (manifest, _) = fleet(dir);
    // The cluster's folder, made by root: munged wants every folder above its socket, key
    // and log owned by root and open to all but its own.
    let cluster_dir = std::env::temp_dir().join(format!("rehost-slurm-{}", std::process::id()));
    let cluster = Cluster::start(&cluster_dir, root);
    lap("fresh copies made, the cluster started");
    let mut in_shards = [0usize; SHARDS];
    for (command, extra) in [("check", &[][..]), ("fix", &["--in-place"][..])] {
        let mut args = vec![command, "--manifest", manifest.to_str().unwrap()];
        args.extend(extra);
        let logs = array_job(&cluster, dir, &args);
        // Each task says which shard it ran and how many rows that is; all rows are run.
        let mut total = 0;
        for (k, log) in logs.iter().enumerate() {
            let want = format!("rehost: shard {k}/{SHARDS} (Slurm array task): ");
            let line = log
                .lines()
                .find(|l| l.starts_with(&want))
                .unwrap_or_else(|| panic!("task {k} of {command}: {log}"));
            let n: usize = line[want.len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(line, format!("{want}{n} of {rows} rows"));
            assert!(n > 0, "shard {k} is empty");
            in_shards[k] = n;
            total += n;
        }
        assert_eq!(total, rows, "{command}: the shards add up to the fleet");
        lap(&format!(
            "the array job ran {command} ({in_shards:?} rows a shard)"
        ));
    }
    drop(cluster);

    let merged = dir.join("merged.db");
    let shards: Vec<PathBuf> = (0..SHARDS)
        .map(|k| dir.join(format!("ledgers/shard-{k}.db")))
        .collect();
    let merge = |out: &Path, inputs: &[PathBuf]| {
        rehost()
            .args(["ledger", "merge"])
            .arg(out)
            .args(inputs)
            .output()
            .unwrap()
    };
    let out = merge(&merged, &shards);
    ran("ledger merge", &out, &[0]);
    let again = merge(&merged, &shards);
    ran("ledger merge again", &again, &[0]);
    for line in String::from_utf8_lossy(&again.stdout).lines() {
        assert!(
            line.contains(": 0 runs and 0 outcomes added"),
            "idempotent: {line}"
        );
    }

    // Each row exactly once, and the same outcome as the one process's.
    let (ours, theirs) = (outcomes(&merged), outcomes(&single));
    assert_eq!(ours.len(), 2 * rows, "check and fix of every row");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (key, (image, seen)) in &ours {
        let (their_image, their_seen) = &theirs[key];
        assert_eq!(image, their_image);
        assert_eq!(seen, their_seen, "{key:?} {image}");
        let fixture = fixtures[key.1 as usize];
        let want = if fixture.is_some() { "ok" } else { "input" };
        assert_eq!(seen.status, want, "{key:?} {image}");
        if key.0 == "fix" && fixture == Some(NOT_FIXABLE.0) {
            assert!(
                !seen.committed,
                "{image}: nothing written where it would not boot"
            );
        }
    }
    // The images are the same bytes at the same paths with the same times: the two
    // ledgers merged together have the same identities, and no two outcomes of one
    // identity disagree.
    let out = merge(&dir.join("both.db"), &[single.clone(), merged.clone()]);
    ran("ledger merge of both", &out, &[0]);

    // The fleet's report, from the merged ledger: its numbers (JSON, and the HTML page in
    // headless Chromium, whose screenshot stays in the test's output folder) equal the
    // ledger's, and it counts every image once and each bad row (the missing file, the
    // duplicate) as a row of its own.
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("slurm-report");
    for command in ["check", "fix"] {
        let counts = common::report::check_report(&[merged.as_path()], command, &out_dir);
        assert_eq!(counts["images"], IMAGES as u64 + 2, "{command}: {counts:?}");
    }
    lap("report checked");

    // Every fixed image checks as booting; the one that cannot be fixed says why.
    let out = rehost()
        .args(["check", "--jsonl", "-q", "-j", "2", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    ran("check after the fix", &out, &[1]);
    let mut checked = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(installs) = v["installs"].as_array() else {
            continue;
        };
        let image = v["image"].as_str().unwrap();
        let fixture = FIXTURES
            .iter()
            .map(|f| f.0)
            .find(|f| image.contains(&format!("/{f}-")))
            .unwrap();
        assert_eq!(installs.len(), 1, "{image}");
        let verdict = installs[0]["verdict"].as_str().unwrap();
        if fixture == NOT_FIXABLE.0 {
            assert_eq!(verdict, "no-boot", "{image}");
            let why = installs[0]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["severity"] == "error")
                .unwrap();
            assert!(
                why["message"].as_str().unwrap().contains(NOT_FIXABLE.1),
                "{why}"
            );
            assert_eq!(why["fixable"], false);
        } else {
            assert!(
                matches!(verdict, "boots" | "boots-with-warnings"),
                "{image}: {verdict}"
            );
        }
        checked += 1;
    }
    // Every image but the duplicate row's (checked on its first row).
    assert_eq!(checked, IMAGES);
    lap("merged, compared and checked");
}
