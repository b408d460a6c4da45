//! A volume staged for writing, a model of its tree, and the outside checks of a result:
//! ntfs-3g (ntfsls, ntfscat, ntfsfix, ntfsresize's cluster accounting), the Sleuth Kit (fls,
//! icat) and the `ntfs` crate.
#![allow(dead_code)]

use super::common;
use rehost::disk::{self, Overlay, ReadAt, WindowMut, WriteAt};
use rehost::fs::ntfs::write::{WriteOptions, Writer};
use rehost::fs::ntfs::Ntfs;
use rehost::fs::FileSystem;
use rehost::{Ctx, Layer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// An image opened read-only with an overlay above it and a volume window into that.
pub struct Staged {
    pub image: PathBuf,
    pub overlay: Arc<Overlay>,
    pub dev: Arc<dyn WriteAt>,
    pub offset: u64,
}

impl Staged {
    /// The volume at byte `offset` of `image` (to the end of the image).
    pub fn open(image: &Path, offset: u64) -> Staged {
        let d = disk::open(image, &Default::default()).unwrap();
        let ctx = Ctx::new(image.display().to_string(), Layer::Raw);
        let overlay = Arc::new(Overlay::new(d.reader(), ctx.clone()));
        let size = overlay.size() - offset;
        let dev: Arc<dyn WriteAt> =
            Arc::new(WindowMut::new(overlay.clone(), offset, size, ctx).unwrap());
        Staged {
            image: image.to_path_buf(),
            overlay,
            dev,
            offset,
        }
    }

    pub fn writer(&self, opts: WriteOptions) -> rehost::Result<Writer> {
        Writer::open(self.dev.clone(), Ctx::new("staged", Layer::Ntfs), opts)
    }

    /// Writes a copy of the image with every staged extent applied (what a commit does).
    pub fn commit_to(&self, out: &Path) {
        std::fs::copy(&self.image, out).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(out).unwrap();
        use std::os::unix::fs::FileExt;
        for (o, b) in self.overlay.extents() {
            f.write_all_at(&b, o).unwrap();
        }
    }

    /// A reader over the staged volume.
    pub fn reader(&self) -> Ntfs {
        let r: Arc<dyn ReadAt> = self.dev.clone();
        Ntfs::open(r, Ctx::new("staged", Layer::Ntfs)).unwrap()
    }
}

/// The tree a volume should hold: files with their record and bytes, directories with their
/// record. Paths are relative, `/`-separated, as the tools print them.
#[derive(Default, Clone)]
pub struct Model {
    pub files: BTreeMap<String, (u64, Vec<u8>)>,
    pub dirs: BTreeMap<String, u64>,
    /// Files whose bytes changed or that were created or moved (compared by the tools).
    pub touched: BTreeSet<String>,
}

impl Model {
    /// The tree of a volume as rehost reads it.
    pub fn read(ntfs: Ntfs) -> Model {
        let fs = FileSystem::Ntfs(Box::new(ntfs));
        let mut entries = Vec::new();
        fs.walk(
            "",
            &mut |p, e| entries.push((p.to_string(), e.clone())),
            &mut |p, e| panic!("{p}: {e}"),
        );
        let mut m = Model::default();
        for (p, e) in entries {
            if e.is_dir {
                m.dirs.insert(p, e.inode);
            } else {
                let mut bytes = Vec::new();
                if !p.starts_with('$') {
                    fs.copy_to(&p, "", &mut bytes).unwrap();
                }
                m.files.insert(p, (e.inode, bytes));
            }
        }
        m
    }

    /// Files a test may change: not the metafiles.
    pub fn user_files(&self) -> Vec<String> {
        self.files
            .keys()
            .filter(|p| !p.starts_with('$'))
            .cloned()
            .collect()
    }

    /// Directories a test may write into.
    pub fn user_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .dirs
            .keys()
            .filter(|p| !p.starts_with('$'))
            .cloned()
            .collect();
        v.push(String::new());
        v
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|(_, b)| b.len() as u64).sum()
    }

    /// Whether `path` exists, ignoring ASCII case (the tests' names are ASCII).
    pub fn exists_any_case(&self, path: &str) -> bool {
        let l = path.to_lowercase();
        self.files
            .keys()
            .chain(self.dirs.keys())
            .any(|p| p.to_lowercase() == l)
    }
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Compares a volume file (the whole image is the volume) against the model with every
/// outside reader; `sample` untouched files are read too.
pub fn check_volume(vol: &Path, model: &Model, sample: usize, what: &str) {
    // ntfsfix -n: $MFT/$MFTMirr, boot sectors, and that ntfs-3g mounts the volume.
    if common::have_tool("ntfsfix") {
        let out = Command::new("ntfsfix").arg("-n").arg(vol).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("processed successfully"),
            "{what}: ntfsfix -n: {text}"
        );
    }
    // ntfsresize --info accounts every cluster of every attribute against $Bitmap.
    if common::have_tool("ntfsresize") {
        let out = Command::new("ntfsresize")
            .args(["-i", "-f", "-P"])
            .arg(vol)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success()
                && text.contains("Accounting clusters")
                && !text.contains("accounting failed")
                && !text.contains("inconsistent"),
            "{what}: ntfsresize -i: {text}"
        );
    }
    let mut expect: BTreeMap<String, u64> = model.dirs.clone();
    for (p, (r, _)) in &model.files {
        expect.insert(p.clone(), *r);
    }
    let tsk = tsk_reads(vol, what);
    if tsk && common::have_tool("fls") {
        let fls = common::fls_tree(vol, 0);
        common::assert_same_map(&expect, &fls, &format!("{what}: the model against fls -r"));
    }
    let touched: Vec<&String> = model
        .touched
        .iter()
        .filter(|p| model.files.contains_key(*p))
        .collect();
    let mut others: Vec<&String> = model
        .files
        .keys()
        .filter(|p| !p.starts_with('$') && !model.touched.contains(*p))
        .collect();
    let step = (others.len() / sample.max(1)).max(1);
    others = others.into_iter().step_by(step).take(sample).collect();
    let compare: Vec<&String> = touched.into_iter().chain(others).collect();
    if common::have_tool("ntfsls") {
        let ls = common::ntfsls_tree(vol);
        let mut mine: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (p, r) in &model.dirs {
            if let Some((_, s)) = ls.get(p) {
                mine.insert(p.clone(), (*r, *s));
            } else {
                mine.insert(p.clone(), (*r, 0));
            }
        }
        for (p, (r, b)) in &model.files {
            let size = if p.starts_with('$') {
                ls.get(p).map_or(0, |x| x.1)
            } else {
                b.len() as u64
            };
            mine.insert(p.clone(), (*r, size));
        }
        let theirs: BTreeMap<String, (u64, u64)> = ls
            .into_iter()
            .filter(|(p, _)| !p.starts_with("$Extend/"))
            .collect();
        let mine: BTreeMap<String, (u64, u64)> = mine
            .into_iter()
            .filter(|(p, _)| !p.starts_with("$Extend/"))
            .collect();
        common::assert_same_map(
            &mine,
            &theirs,
            &format!("{what}: the model against ntfsls -R"),
        );
    }
    if common::have_tool("ntfscat") {
        for p in &compare {
            let out = common::run(Command::new("ntfscat").arg(vol).arg(format!("/{p}")));
            common::assert_same_bytes(&out, &model.files[*p].1, &format!("{what}: ntfscat /{p}"));
        }
    }
    if tsk && common::have_tool("icat") {
        for p in &compare {
            let (r, b) = &model.files[*p];
            let out = common::icat(vol, 0, &r.to_string());
            common::assert_same_bytes(&out, b, &format!("{what}: icat {r} ({p})"));
        }
    }
    check_with_ntfs_crate(vol, model, what);
}

/// Whether the Sleuth Kit can read the volume: it reads clusters of at most 64 KiB (a
/// larger cluster is "Cannot determine file system type"), and says nothing else about such
/// a volume. Says so on stderr when it cannot.
pub fn tsk_reads(vol: &Path, what: &str) -> bool {
    let mut b = [0u8; 512];
    use std::io::Read;
    std::fs::File::open(vol)
        .and_then(|mut f| f.read_exact(&mut b))
        .unwrap();
    let bps = u16::from_le_bytes([b[0x0B], b[0x0C]]) as u64;
    let spc = b[0x0D];
    let cluster = if spc > 0x80 {
        bps << (256 - spc as u32)
    } else {
        bps * spc as u64
    };
    if cluster > 65536 {
        eprintln!(
            "SKIP: {what}: the Sleuth Kit does not read {cluster}-byte clusters; fls and icat did not run"
        );
        return false;
    }
    true
}

/// Every file of the model, found by path and read through the `ntfs` crate.
pub fn check_with_ntfs_crate(vol: &Path, model: &Model, what: &str) {
    use ntfs::indexes::NtfsFileNameIndex;
    let mut fs = std::io::BufReader::new(std::fs::File::open(vol).unwrap());
    let mut n = ntfs::Ntfs::new(&mut fs).unwrap();
    n.read_upcase_table(&mut fs).unwrap();
    for (p, (record, bytes)) in model.files.iter().filter(|(p, _)| !p.starts_with('$')) {
        let mut cur = n.root_directory(&mut fs).unwrap();
        for comp in p.split('/') {
            let index = cur.directory_index(&mut fs).unwrap();
            let mut finder = index.finder();
            let e = NtfsFileNameIndex::find(&mut finder, &n, &mut fs, comp)
                .unwrap_or_else(|| panic!("{what}: the ntfs crate does not find {p}"))
                .unwrap();
            cur = e.to_file(&n, &mut fs).unwrap();
        }
        assert_eq!(
            cur.file_record_number(),
            *record,
            "{what}: {p} through the ntfs crate"
        );
        // ntfs 0.4 reads the $DATA of a file with an attribute list as empty: such files
        // are compared through ntfs-3g and the Sleuth Kit only.
        let listed = cur.attributes_raw().any(|a| {
            a.is_ok_and(|a| {
                a.ty()
                    .is_ok_and(|t| t == ntfs::NtfsAttributeType::AttributeList)
            })
        });
        if listed {
            continue;
        }
        let item = cur.data(&mut fs, "").unwrap().unwrap();
        let attr = item.to_attribute().unwrap();
        let mut theirs = Vec::new();
        let mut v = attr.value(&mut fs).unwrap().attach(&mut fs);
        std::io::Read::read_to_end(&mut v, &mut theirs).unwrap();
        common::assert_same_bytes(
            &theirs,
            bytes,
            &format!("{what}: {p} through the ntfs crate"),
        );
    }
}
