//! An image opened for writing: its concrete container, which turns staged virtual-disk
//! extents into a [`Plan`] of host-file writes.
//!
//! Raw images and fixed VHDs store the disk at the same offsets in the file, so their plan
//! is the extents themselves (a fixed VHD's footer lies past the virtual disk and is never
//! touched). Dynamic and differencing VHDs plan in `vhd::write`, VHDX in `vhdx::write`,
//! qcow2 in `qcow2::write`.

use super::plan::{HostWrite, Phase, Plan};
use super::{Container, DiskInfo, Format, Raw, ReadAt};
use crate::qcow2::Qcow2;
use crate::vhd::Vhd;
use crate::vhdx::Vhdx;
use crate::vmdk::Vmdk;
use rehost_core::error::Result;
use std::sync::Arc;

use crate::ids::Ids;

/// The top image of a chain, by type.
pub(crate) enum Target {
    /// A raw image.
    Raw(Raw),
    /// A VHD.
    Vhd(Vhd),
    /// A VHDX.
    Vhdx(Vhdx),
    /// A qcow2 image.
    Qcow2(Qcow2),
    /// A VMDK disk.
    Vmdk(Vmdk),
    /// A format rehost reads but does not write in place.
    ReadOnly(Arc<dyn Container>),
}

impl Target {
    fn container(&self) -> &dyn Container {
        match self {
            Target::Raw(r) => r,
            Target::Vhd(v) => v,
            Target::Vhdx(v) => v,
            Target::Qcow2(q) => q,
            Target::Vmdk(v) => v,
            Target::ReadOnly(c) => c.as_ref(),
        }
    }

    /// The refusal of a write into a format rehost does not write, if this is one.
    pub fn refuse_write(&self) -> Result<()> {
        let (why, layer) = match self {
            Target::Qcow2(q) => (q.write_refusal(), rehost_core::Layer::Qcow2),
            Target::Vmdk(v) => (v.write_refusal(), rehost_core::Layer::Vmdk),
            _ => (None, rehost_core::Layer::File),
        };
        if let Some(why) = why {
            let info = self.container().info();
            let stem = std::path::Path::new(&info.path).with_extension("");
            return Err(rehost_core::Ctx::new(info.path.as_str(), layer).refused(
                "",
                format!(
                    "this {} image is not written in place: {why}; write the result as a new \
                     image instead, `--output {}.vhdx` (or .vhd, .raw, .qcow2, .vmdk)",
                    info.format,
                    stem.display()
                ),
            ));
        }
        let Target::ReadOnly(c) = self else {
            return Ok(());
        };
        let info = c.info();
        let name = &info.path;
        let stem = std::path::Path::new(name).with_extension("");
        if info.format == Format::E01 {
            let label = match info.variant.as_deref() {
                Some(v) if v.starts_with("Ex01") => "an Ex01",
                _ => "an E01",
            };
            return Err(
                rehost_core::Ctx::new(name.as_str(), rehost_core::Layer::File).refused(
                    "",
                    format!(
                        "{label} evidence file is read-only by design: rehost never writes \
                         into one (its chunks and stored hashes are the evidence); write the \
                         result as a new image instead, `--output {}.vhdx` (or .vhd, .raw), \
                         which converts and writes in one pass and leaves the evidence as it \
                         was",
                        stem.display()
                    ),
                ),
            );
        }
        Err(
            rehost_core::Ctx::new(name.as_str(), rehost_core::Layer::File).refused(
                "",
                format!(
                    "rehost reads {} images and never writes into them: write the result as a \
                 new image instead, `--output {}.vhdx` (or .vhd, .raw, .qcow2, .vmdk), which \
                 converts and writes in one pass",
                    info.format,
                    stem.display()
                ),
            ),
        )
    }

    /// Checks what a commit repaired in the container besides the write (a dirty qcow2's
    /// refcounts, walked again from the file).
    pub fn check_repaired(&self) -> Result<()> {
        match self {
            Target::Qcow2(q) => q.check_rebuilt(),
            _ => Ok(()),
        }
    }

    /// Refuses growing the disk to `new_size` bytes where the container cannot (the reason
    /// says why and what would do it).
    pub fn refuse_growth(&self, new_size: u64) -> Result<()> {
        let info = self.container().info();
        let ctx = rehost_core::Ctx::new(info.path.as_str(), rehost_core::Layer::File);
        let why = match self {
            Target::Raw(_) if new_size % 512 != 0 => {
                Some(format!("{new_size} bytes is not a whole number of sectors"))
            }
            Target::Raw(_) => None,
            Target::Vhd(v) => v.growth_refusal(new_size),
            Target::Vhdx(v) => v.growth_refusal(new_size),
            Target::Qcow2(q) => q.growth_refusal(new_size),
            Target::Vmdk(v) => v.growth_refusal(new_size),
            Target::ReadOnly(_) => return self.refuse_write(),
        };
        match why {
            Some(why) if new_size > self.size() => {
                Err(ctx.refused("", format!("the disk cannot grow: {why}")))
            }
            _ => Ok(()),
        }
    }

    /// The host writes that store `extents` (sorted, disjoint virtual-disk extents) on a
    /// disk of `new_size` bytes (its size, or more when it was grown); `view` reads the disk
    /// as staged (for the rest of partly written sectors).
    pub fn plan(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        ids: &mut Ids,
        new_size: u64,
    ) -> Result<Plan> {
        self.refuse_growth(new_size)?;
        match self {
            Target::Raw(r) => Ok(grown_raw(direct(Format::Raw, r.size(), extents), new_size)),
            Target::Vhd(v) => v.plan(view, extents, new_size),
            Target::Vhdx(v) => v.plan(view, extents, ids, new_size),
            Target::Qcow2(q) => q.plan(view, extents, new_size),
            Target::Vmdk(v) => {
                // A disk of several files: the first file's plan, with every file's notes
                // (what a dry run shows); the commit takes them all from `plan_files`.
                let mut files = v.plan_files(view, extents, ids, new_size)?.into_iter();
                let Some((_, mut first)) = files.next() else {
                    return Ok(Plan::empty(Format::Vmdk, 0));
                };
                for (path, p) in files {
                    first.notes.extend(
                        p.notes
                            .into_iter()
                            .map(|n| format!("{}: {n}", path.display())),
                    );
                }
                Ok(first)
            }
            Target::ReadOnly(_) => self.refuse_write().map(|()| Plan::empty(Format::Raw, 0)),
        }
    }

    /// The plans, one per host file, that store `extents` (see [`Target::plan`]): the
    /// file opened first, then the other files a VMDK of several files writes (its
    /// extent files, each journaled beside it).
    pub fn plan_files(
        &self,
        path: &std::path::Path,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        ids: &mut Ids,
        new_size: u64,
    ) -> Result<Vec<(std::path::PathBuf, Plan)>> {
        match self {
            Target::Vmdk(v) => {
                self.refuse_growth(new_size)?;
                let mut files = v.plan_files(view, extents, ids, new_size)?;
                if let Some(first) = files.first_mut() {
                    first.0 = path.to_path_buf();
                }
                Ok(files)
            }
            _ => Ok(vec![(
                path.to_path_buf(),
                self.plan(view, extents, ids, new_size)?,
            )]),
        }
    }
}

/// A raw image's plan for a disk of `new_size` bytes: the file's length set first.
fn grown_raw(mut plan: Plan, new_size: u64) -> Plan {
    if new_size <= plan.file_len {
        return plan;
    }
    plan.notes.push(format!(
        "the disk grows from {} to {new_size} bytes (the file's length)",
        plan.file_len
    ));
    plan.new_len = new_size;
    match plan.phases.first_mut() {
        Some(p) => p.set_len = Some(new_size),
        None => plan.phases.push(Phase {
            name: "grow",
            set_len: Some(new_size),
            writes: Vec::new(),
        }),
    }
    plan
}

/// The plan of a container that stores the disk at offset 0 of the file.
pub(crate) fn direct(format: Format, file_len: u64, extents: &[(u64, Vec<u8>)]) -> Plan {
    let mut plan = Plan::empty(format, file_len);
    let writes: Vec<HostWrite> = extents
        .iter()
        .map(|(at, b)| HostWrite::new(*at, b.clone(), "data"))
        .collect();
    if !writes.is_empty() {
        plan.notes.push(format!(
            "{} extents written in place ({} bytes)",
            writes.len(),
            writes.iter().map(|w| w.data.len() as u64).sum::<u64>()
        ));
        plan.phases.push(Phase {
            name: "data",
            set_len: None,
            writes,
        });
    }
    plan
}

impl ReadAt for Target {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.container().read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.container().size()
    }
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        self.container().allocated()
    }
}

impl Container for Target {
    fn info(&self) -> &DiskInfo {
        self.container().info()
    }
}
