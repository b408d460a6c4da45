//! Opening an image: the format from the content, parents through their locators, a cache above.

use super::target::Target;
use super::{BlockCache, Container, Disk, Format, HostFile, IoStats, Raw, ReadAt};
use rehost_core::error::{Ctx, Layer, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Differencing chains deeper than this are refused (a loop or a hostile image).
pub const MAX_CHAIN_DEPTH: usize = 64;

/// How to open an image.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Blocks of [`crate::BLOCK_SIZE`] bytes kept in the cache (0: no cache).
    pub cache_blocks: usize,
    /// Memory-map raw images (the default) instead of reading them with `pread`.
    pub map_raw: bool,
    /// Keep bulk reads in the cache too (a session that reads the same hives again).
    pub cache_bulk: bool,
}

impl OpenOptions {
    /// For a session that reads its hives and files several times (a fix: check, edit,
    /// verify, check the staged image): a cache of [`crate::SESSION_CACHE_BLOCKS`] that keeps
    /// bulk reads, so that each byte of the image is read from the file once while it fits.
    pub fn session() -> Self {
        OpenOptions {
            cache_blocks: SESSION_CACHE_BLOCKS,
            cache_bulk: true,
            ..Self::default()
        }
    }
}

/// Blocks kept by a session's cache: 256 MiB, more than the hives of any install take.
pub const SESSION_CACHE_BLOCKS: usize = 65_536;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_blocks: 4096,
            map_raw: true,
            cache_bulk: false,
        }
    }
}

/// Opens the image at `path` read-only: detects its format, opens its parents, and puts a
/// block cache above it.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Disk> {
    let stats = IoStats::new();
    let parents = ParentOpener {
        opts: opts.clone(),
        stats: stats.clone(),
        chain: Vec::new(),
    };
    let container = parents.open_member(path)?;
    let mut info = container.info().clone();
    if let Some(state) = super::journal::quick_state(path) {
        info.notes.push(journal_note(path, state));
    }
    Ok(Disk::new(info, cached(container, opts), stats))
}

/// `device` behind the cache `opts` asks for (none, plain, or keeping bulk reads).
pub(crate) fn cached<D: ReadAt + 'static>(device: D, opts: &OpenOptions) -> Arc<dyn ReadAt> {
    match (opts.cache_blocks, opts.cache_bulk) {
        (0, _) => Arc::new(device),
        (n, false) => Arc::new(BlockCache::new(device, n)),
        (n, true) => Arc::new(BlockCache::keeping_bulk(device, n)),
    }
}

/// What a read-only open says about the undo journal beside the image.
fn journal_note(path: &Path, state: super::journal::State) -> String {
    let j = super::journal::journal_path(path);
    let name = j.file_name().unwrap_or_default().to_string_lossy();
    match state {
        super::journal::State::Committed => format!(
            "an undo journal ({name}) is beside the image: `rehost undo` restores it as it was \
             before rehost wrote into it"
        ),
        _ => format!(
            "a commit or undo into this image was interrupted ({name} is incomplete): what is \
             read may be half written; opening it for writing, or `rehost undo`, rolls it back"
        ),
    }
}

/// Opens one container (no cache above it), counting its reads in `stats`.
pub fn open_container(
    path: &Path,
    opts: &OpenOptions,
    stats: Arc<IoStats>,
) -> Result<Arc<dyn Container>> {
    ParentOpener {
        opts: opts.clone(),
        stats,
        chain: Vec::new(),
    }
    .open_member(path)
}

/// Opens the members of a differencing chain, refusing loops and chains that are too deep.
pub struct ParentOpener {
    opts: OpenOptions,
    stats: Arc<IoStats>,
    chain: Vec<PathBuf>,
}

impl ParentOpener {
    /// Opens the parent at `path` of the image `child` (named in errors).
    pub fn open_parent(&self, child: &Ctx, path: &Path) -> Result<Arc<dyn Container>> {
        let canonical = path.canonicalize().map_err(|e| child.io(0, e))?;
        if self.chain.contains(&canonical) {
            return Err(child.corrupt(
                0,
                format!("differencing chain loops back to {}", path.display()),
            ));
        }
        if self.chain.len() >= MAX_CHAIN_DEPTH {
            return Err(child.unsupported(
                0,
                format!("differencing chain deeper than {MAX_CHAIN_DEPTH} images"),
            ));
        }
        self.open_member(path)
    }

    fn open_member(&self, path: &Path) -> Result<Arc<dyn Container>> {
        Ok(match self.open_typed(path)? {
            Target::Raw(r) => Arc::new(r),
            Target::Vhd(v) => Arc::new(v),
            Target::Vhdx(v) => Arc::new(v),
            Target::Qcow2(q) => Arc::new(q),
            Target::Vmdk(v) => Arc::new(v),
            Target::ReadOnly(c) => c,
        })
    }

    /// Opens a file that holds part of an image's data as it stands (a VMDK extent, a qcow2
    /// external data file), its reads counted with the image's; `map` to memory-map it
    /// when raw images are.
    pub fn open_data(&self, path: &Path, map: bool) -> Result<HostFile> {
        HostFile::open(path, map && self.opts.map_raw, self.stats.clone())
    }

    fn open_typed(&self, path: &Path) -> Result<Target> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut chain = self.chain.clone();
        chain.push(canonical);
        let next = ParentOpener {
            opts: self.opts.clone(),
            stats: self.stats.clone(),
            chain,
        };
        let probe = HostFile::open(path, false, self.stats.clone())?;
        match detect_format(&probe)? {
            Format::Vhdx => Ok(Target::Vhdx(super::vhdx::Vhdx::open(probe, &next)?)),
            Format::Vhd => Ok(Target::Vhd(super::vhd::Vhd::open(probe, &next)?)),
            Format::Vmdk => Ok(Target::Vmdk(super::vmdk::Vmdk::open(probe, &next)?)),
            Format::Qcow2 => Ok(Target::Qcow2(super::qcow2::Qcow2::open(probe, &next)?)),
            Format::E01 => Ok(Target::ReadOnly(Arc::new(super::ewf::Ewf::open(
                probe, &next,
            )?))),
            Format::Raw => {
                drop(probe);
                let file = HostFile::open(path, self.opts.map_raw, self.stats.clone())?;
                Ok(Target::Raw(Raw::new(file)))
            }
        }
    }
}

/// Opens the image at `path` as its concrete container type (for writing), its parents
/// read-only.
pub(crate) fn open_target(path: &Path, opts: &OpenOptions, stats: Arc<IoStats>) -> Result<Target> {
    ParentOpener {
        opts: opts.clone(),
        stats,
        chain: Vec::new(),
    }
    .open_typed(path)
}

/// Tells the container format from the file's content: `vhdxfile` at offset 0 is VHDX; a
/// `conectix` footer at the end (or its copy at offset 0) is VHD; `QFI\xfb` is qcow2; `KDMV`
/// (a sparse extent) or descriptor text is VMDK; `EVF` (EWF version 1 or 2) is E01; a format
/// rehost does not read (VMware's COWD and seSparse, VDI, L01, ISO 9660, LUKS, LVM2, BitLocker) is an error of kind
/// [`rehost_core::ErrorKind::Unsupported`] saying what it is and how to convert it, and a
/// VHD whose footers are both damaged an error of kind `Corrupt`; anything else is raw.
pub fn detect_format(file: &HostFile) -> Result<Format> {
    let size = file.size();
    let mut head = [0u8; 8];
    let n = file.read_some_at(0, &mut head)?;
    if n == 8 && &head == b"vhdxfile" {
        return Ok(Format::Vhdx);
    }
    if n == 8 && &head == b"conectix" {
        return Ok(Format::Vhd);
    }
    if n >= 4 && &head[..4] == b"QFI\xfb" {
        return Ok(Format::Qcow2);
    }
    if n >= 4 && &head[..4] == b"KDMV" {
        return Ok(Format::Vmdk);
    }
    if n == 8 && (&head == super::ewf::EVF_SIGNATURE || &head == super::ewf::EVF2_SIGNATURE) {
        return Ok(Format::E01);
    }
    if is_descriptor(file)? {
        return Ok(Format::Vmdk);
    }
    // A VHD footer is 512 bytes at the end; images from before Virtual PC 2004 have 511.
    for tail in [512u64, 511] {
        if size >= tail {
            let mut cookie = [0u8; 8];
            file.read_some_at(size - tail, &mut cookie)?;
            if &cookie == b"conectix" {
                return Ok(Format::Vhd);
            }
        }
    }
    refuse_foreign(file)?;
    Ok(Format::Raw)
}

/// Whether the file is a VMDK descriptor: small text that starts with the descriptor's
/// comment line, or whose first lines set `createType` (a descriptor written by hand).
/// The file a write in place into the image at `path` goes into: the image itself, or, for
/// a VMDK descriptor whose disk is one flat extent (monolithicFlat, vmfs) from the start of
/// a file of exactly the disk's size, beside the descriptor, and no parent, that extent
/// file, which is then written (and journaled, and undone) as the raw disk it is. The
/// descriptor is left as it is.
pub(crate) fn write_path(path: &Path) -> Result<std::path::PathBuf> {
    let Ok(file) = HostFile::open(path, false, IoStats::new()) else {
        return Ok(path.to_path_buf());
    };
    if !is_descriptor(&file)? {
        return Ok(path.to_path_buf());
    }
    let mut text = vec![0u8; file.size() as usize];
    file.read_at(0, &mut text)?;
    let ctx = file.ctx().with_layer(rehost_core::Layer::Vmdk);
    let d = super::vmdk::Descriptor::parse(&text, &ctx, 0)?;
    let [e] = d.extents.as_slice() else {
        return Ok(path.to_path_buf());
    };
    let no_parent = d.parent_cid.is_none_or(|c| c == super::vmdk::NO_PARENT);
    let Some(name) = e
        .file
        .as_deref()
        .filter(|_| e.kind == super::vmdk::ExtentType::Flat && e.offset == 0 && no_parent)
    else {
        return Ok(path.to_path_buf());
    };
    let beside = Path::new(name)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    let flat = path.parent().unwrap_or(Path::new("")).join(name);
    let len = std::fs::metadata(&flat).map(|m| m.len()).ok();
    if beside && Some(e.sectors.saturating_mul(512)) == len {
        Ok(flat)
    } else {
        Ok(path.to_path_buf())
    }
}

/// The files beside the image at `path` that a write in place may write too, and whose
/// journals go with its own (see `several`): for a VMDK descriptor written as such (not
/// through its one flat extent, see [`write_path`]), the extent files it names beside it;
/// none for an image of one file.
pub(crate) fn journal_members(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    if write_path(path)? != path {
        return Ok(Vec::new());
    }
    let Ok(file) = HostFile::open(path, false, IoStats::new()) else {
        return Ok(Vec::new());
    };
    if !is_descriptor(&file)? {
        return Ok(Vec::new());
    }
    let mut text = vec![0u8; file.size() as usize];
    file.read_at(0, &mut text)?;
    let ctx = file.ctx().with_layer(rehost_core::Layer::Vmdk);
    let d = super::vmdk::Descriptor::parse(&text, &ctx, 0)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut members: Vec<std::path::PathBuf> = Vec::new();
    for name in d.extents.iter().filter_map(|e| e.file.as_deref()) {
        // Only files beside the descriptor are ever opened (see `vmdk::open_extent`).
        let beside = Path::new(name).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        let member = dir.join(name);
        if beside && !name.is_empty() && member != path && !members.contains(&member) {
            members.push(member);
        }
    }
    Ok(members)
}

/// Directory entries looked at to find an extent's descriptor.
const MAX_SCANNED: usize = 100_000;

/// The descriptor of the VMDK of several files that `path` is an extent of, if it is one: a
/// `.vmdk` descriptor beside it that names it among the files it journals with it (see
/// [`journal_members`]). Such an extent is written and undone only through its descriptor,
/// whose journal ties the commits of the set's files together.
pub(crate) fn lead_of(path: &Path) -> Result<Option<PathBuf>> {
    // Extents are named .vmdk; a file of another name is never looked for.
    let named_vmdk = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vmdk"));
    if !named_vmdk {
        return Ok(None);
    }
    let Ok(file) = HostFile::open(path, false, IoStats::new()) else {
        return Ok(None);
    };
    if is_descriptor(&file)? || has_own_descriptor(&file)? {
        return Ok(None);
    }
    let Ok(me) = std::fs::canonicalize(path) else {
        return Ok(None);
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for entry in entries.flatten().take(MAX_SCANNED) {
        let name = entry.file_name();
        let vmdk = Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vmdk"));
        let small = entry
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() <= super::vmdk::MAX_DESCRIPTOR);
        if !vmdk || !small {
            continue;
        }
        let candidate = path.with_file_name(&name);
        // A file that is not a readable descriptor names no extent.
        let Ok(members) = journal_members(&candidate) else {
            continue;
        };
        if members
            .iter()
            .any(|m| std::fs::canonicalize(m).is_ok_and(|m| m == me))
        {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Whether `file` is a sparse extent with a descriptor of its own inside (a
/// monolithicSparse or streamOptimized disk, whole by itself; the extents of a
/// twoGbMaxExtentSparse disk keep room for one and leave it empty).
fn has_own_descriptor(file: &HostFile) -> Result<bool> {
    let ctx = file.ctx().with_layer(Layer::Vmdk);
    let Ok(h) = super::vmdk::SparseExtentHeader::read(file, &ctx, 0) else {
        return Ok(false);
    };
    let (at, len) = (
        h.descriptor_offset.saturating_mul(512),
        h.descriptor_size.saturating_mul(512),
    );
    if len == 0 || len > super::vmdk::MAX_DESCRIPTOR {
        return Ok(false);
    }
    let mut text = vec![0u8; len as usize];
    let n = file.read_some_at(at, &mut text)?;
    Ok(text[..n]
        .iter()
        .any(|c| !c.is_ascii_whitespace() && *c != 0))
}

/// Why `extent` (an extent of the VMDK `lead`) is not written or undone alone; `instead`
/// says what to do.
pub(crate) fn extent_alone(extent: &Path, lead: &Path, instead: &str) -> String {
    format!(
        "{} is an extent of the VMDK {}, whose descriptor ties the commits of all its files \
         together: {instead}",
        extent.display(),
        lead.display(),
    )
}

fn is_descriptor(file: &HostFile) -> Result<bool> {
    if file.size() > super::vmdk::MAX_DESCRIPTOR {
        return Ok(false);
    }
    let mut head = vec![0u8; 4096];
    let n = file.read_some_at(0, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"# Disk DescriptorFile") {
        return Ok(true);
    }
    let text = head
        .iter()
        .all(|&c| c == b'\n' || c == b'\r' || c == b'\t' || (0x20..0x7f).contains(&c));
    Ok(text && head.windows(12).any(|w| w == b"\ncreateType="))
}

/// Fails with an error naming what the file is when it is a format rehost does not read
/// (VMware COWD, VDI, L01, ISO 9660, LUKS, LVM2, BitLocker) or a VHD whose footers are
/// both damaged, rather than let it pass for a raw disk.
fn refuse_foreign(file: &HostFile) -> Result<()> {
    let mut head = vec![0u8; 4096];
    let n = file.read_some_at(0, &mut head)?;
    head.truncate(n);
    let mut iso = [0u8; 5];
    let iso_n = file.read_some_at(0x8001, &mut iso)?;
    let name = file.name();
    let vhdx = Path::new(name).with_extension("vhdx").display().to_string();
    let qemu = |from: &str| {
        format!(
            "convert it with `qemu-img convert -f {from} -O vhdx {name} {vhdx}` (or `-O raw`) and give rehost the result"
        )
    };
    let at = |o: usize, sig: &[u8]| head.get(o..o + sig.len()) == Some(sig);
    let (offset, what, how) = if at(0, b"COWD") {
        (
            0,
            "a VMware ESX sparse extent (COWD: a vmfsSparse snapshot's delta)".to_string(),
            "clone the disk from its snapshot's descriptor on the ESXi host (`vmkfstools -i DISK.vmdk -d thin NEW.vmdk`), or consolidate the snapshots, and give rehost the result".to_string(),
        )
    } else if head.get(0x40..0x44) == Some(&0xbeda_107f_u32.to_le_bytes()[..]) {
        (0x40, "a VirtualBox VDI image".to_string(), qemu("vdi"))
    } else if at(0, b"LVF\x09\x0d\x0a\xff\x00") || at(0, b"LEF2\x0d\x0a\x81\x00") {
        (
            0,
            "a logical evidence file (L01/Lx01: files collected one by one, not a disk)"
                .to_string(),
            "rehost reads images of whole disks; give it the disk the files came from".to_string(),
        )
    } else if iso_n == 5 && &iso == b"CD001" {
        (
            0x8001,
            "an ISO 9660 optical disc image (an install medium or a CD, not a hard disk)"
                .to_string(),
            "rehost reads hard disk images of installed Windows; give it the disk (raw, VHD or VHDX) the install is on"
                .to_string(),
        )
    } else if at(0, b"LUKS\xba\xbe") {
        let version = head
            .get(6..8)
            .map_or(0, |v| u16::from_be_bytes([v[0], v[1]]));
        (
            0,
            format!("a LUKS-encrypted volume (LUKS{version})"),
            format!(
                "unlock it with `cryptsetup open {name} NAME` and give rehost /dev/mapper/NAME"
            ),
        )
    } else if let Some(sector) = (0..4).find(|s| at(s * 512, b"LABELONE")) {
        (
            sector * 512,
            "an LVM2 physical volume".to_string(),
            format!(
                "activate its volume group (`losetup -f --show {name}`, then `vgchange -ay`) and give rehost the logical volume, /dev/VG/LV"
            ),
        )
    } else if at(3, b"-FVE-FS-") {
        (
            3,
            "a BitLocker-encrypted volume".to_string(),
            "decrypt it in Windows (`manage-bde -off C:`) or unlock it (`dislocker`, `cryptsetup bitlkOpen`) and give rehost the decrypted volume"
                .to_string(),
        )
    } else if at(512, b"cxsparse") {
        return Err(file.ctx().with_layer(Layer::Vhd).corrupt(
            512,
            "a damaged dynamic or differencing VHD: its dynamic header (`cxsparse`) is here, but neither the footer at the end nor its copy at offset 0 holds the `conectix` cookie, so it cannot be read as a disk as it stands",
        ));
    } else {
        return Ok(());
    };
    Err(file.ctx().unsupported(
        offset as u64,
        format!("this is {what}, which rehost does not read (yet): {how}"),
    ))
}

/// Resolves a parent path written by Windows (`.\parent.vhd`, `C:\dir\parent.vhdx`,
/// `\\?\C:\...`) against the directory of the child: relative paths are joined to it;
/// absolute Windows paths are tried as they stand (after `\` becomes `/`) and then by their
/// file name beside the child. Returns the candidates in the order to try.
pub fn parent_candidates(child: &Path, written: &str) -> Vec<PathBuf> {
    let dir = child.parent().unwrap_or(Path::new("."));
    let mut s = written.trim_end_matches('\0').to_string();
    for prefix in ["\\\\?\\", "\\??\\"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_string();
        }
    }
    let unix = s.replace('\\', "/");
    let mut out = Vec::new();
    let is_drive = unix.len() >= 2 && unix.as_bytes()[1] == b':';
    if is_drive || unix.starts_with('/') {
        if !is_drive {
            out.push(PathBuf::from(&unix));
        }
    } else {
        out.push(dir.join(unix.trim_start_matches("./")));
    }
    if let Some(name) = unix.rsplit('/').next().filter(|n| !n.is_empty()) {
        let beside = dir.join(name);
        if !out.contains(&beside) {
            out.push(beside);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths_resolve_beside_the_child() {
        let child = Path::new("/images/child.vhd");
        assert_eq!(
            parent_candidates(child, ".\\base.vhd"),
            vec![PathBuf::from("/images/base.vhd")]
        );
        assert_eq!(
            parent_candidates(child, "C:\\VMs\\base.vhd"),
            vec![PathBuf::from("/images/base.vhd")]
        );
        assert_eq!(
            parent_candidates(child, "..\\other\\base.vhdx\0"),
            vec![
                PathBuf::from("/images/../other/base.vhdx"),
                PathBuf::from("/images/base.vhdx")
            ]
        );
    }
}
