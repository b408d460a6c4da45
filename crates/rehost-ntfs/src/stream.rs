//! Attribute values as devices: resident bytes, runs with holes, the initialized size, and
//! LZNT1 compression units.

use super::lznt1;
use super::record::{Attribute, Body, ATTR_COMPRESSED, ATTR_ENCRYPTED};
use super::runlist::Run;
use rehost_core::error::{Ctx, Location, Result};
use rehost_core::io::ReadAt;
use std::sync::Arc;

/// One attribute value put together from all its extents (an attribute list may split a
/// large value over several records).
#[derive(Debug, Clone)]
pub struct StreamDesc {
    /// Attribute type.
    pub ty: u32,
    /// Attribute (stream) name.
    pub name: String,
    /// Attribute flags of the first extent (compressed, encrypted, sparse).
    pub flags: u16,
    /// The value, when resident.
    pub resident: Option<Vec<u8>>,
    /// Runs of all extents, in VCN order.
    pub runs: Vec<Run>,
    /// Compression unit as a power of two of clusters (0: none).
    pub compression_unit: u8,
    /// Logical size in bytes.
    pub data_size: u64,
    /// Allocated size in bytes.
    pub allocated_size: u64,
    /// Bytes written; the rest reads as zeros.
    pub initialized_size: u64,
}

impl StreamDesc {
    /// Puts together the extents of one attribute, given in any order. `what` names the
    /// attribute in errors.
    pub fn from_extents(mut extents: Vec<&Attribute>, what: &str, ctx: &Ctx) -> Result<Self> {
        let first = extents
            .first()
            .copied()
            .ok_or_else(|| ctx.corrupt_at_path(what, "attribute has no extents"))?;
        if let Body::Resident(v) = &first.body {
            if extents.len() > 1 {
                return Err(ctx.corrupt(
                    first.pos,
                    format!("{what}: resident attribute with several extents"),
                ));
            }
            return Ok(StreamDesc {
                ty: first.ty,
                name: first.name.clone(),
                flags: first.flags,
                resident: Some(v.clone()),
                runs: Vec::new(),
                compression_unit: 0,
                data_size: v.len() as u64,
                allocated_size: v.len() as u64,
                initialized_size: v.len() as u64,
            });
        }
        extents.sort_by_key(|a| match &a.body {
            Body::NonResident(n) => n.start_vcn,
            Body::Resident(_) => u64::MAX,
        });
        let mut runs = Vec::new();
        let mut next_vcn = 0u64;
        let mut head = None;
        for a in &extents {
            let Body::NonResident(n) = &a.body else {
                return Err(ctx.corrupt(
                    a.pos,
                    format!("{what}: resident extent among non-resident ones"),
                ));
            };
            if n.start_vcn != next_vcn {
                return Err(ctx.corrupt(
                    a.pos,
                    format!(
                        "{what}: extent starts at VCN {} where {next_vcn} was expected",
                        n.start_vcn
                    ),
                ));
            }
            if head.is_none() {
                head = Some(n);
            }
            runs.extend_from_slice(&n.runs);
            next_vcn = n.last_vcn.wrapping_add(1);
        }
        let head = head.ok_or_else(|| ctx.corrupt_at_path(what, "attribute has no extents"))?;
        if head.initialized_size > head.data_size {
            return Err(ctx.corrupt(
                first.pos,
                format!(
                    "{what}: initialized size {} exceeds data size {}",
                    head.initialized_size, head.data_size
                ),
            ));
        }
        Ok(StreamDesc {
            ty: first.ty,
            name: first.name.clone(),
            flags: first.flags,
            resident: None,
            runs,
            compression_unit: head.compression_unit,
            data_size: head.data_size,
            allocated_size: head.allocated_size,
            initialized_size: head.initialized_size,
        })
    }

    /// Whether the value is LZNT1-compressed.
    pub fn is_compressed(&self) -> bool {
        self.resident.is_none() && self.flags & ATTR_COMPRESSED != 0 && self.compression_unit != 0
    }

    /// Whether the value is EFS-encrypted (its bytes cannot be read offline).
    pub fn is_encrypted(&self) -> bool {
        self.flags & ATTR_ENCRYPTED != 0
    }
}

/// A physical piece of a stream: `len` bytes of the stream from `offset`, stored at
/// `volume_offset` on the volume, or not stored (`None`: a hole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Extent {
    /// Offset in the stream.
    pub offset: u64,
    /// Byte offset on the volume, or `None` for a hole.
    pub volume_offset: Option<u64>,
    /// Length in bytes.
    pub len: u64,
}

/// A readable attribute value: a device of its own over the volume.
#[derive(Clone)]
pub struct Stream {
    dev: Arc<dyn ReadAt>,
    desc: StreamDesc,
    cluster: u64,
    ctx: Ctx,
    path: String,
}

impl Stream {
    /// A reader of `desc` on the volume `dev` with clusters of `cluster` bytes. `path`
    /// names the stream in errors.
    pub fn new(
        dev: Arc<dyn ReadAt>,
        desc: StreamDesc,
        cluster: u32,
        ctx: Ctx,
        path: String,
    ) -> Result<Self> {
        if desc.is_compressed()
            && (desc.compression_unit > 8 || (cluster as u64) << desc.compression_unit > 1 << 20)
        {
            return Err(ctx.error(
                Location::Path(path.clone()),
                rehost_core::ErrorKind::Unsupported(format!(
                    "compression unit of 2^{} clusters of {cluster} bytes",
                    desc.compression_unit
                )),
            ));
        }
        if desc.resident.is_none() {
            let mapped = desc
                .runs
                .iter()
                .fold(0u64, |a, r| a.saturating_add(r.len))
                .saturating_mul(cluster as u64);
            if desc.data_size > mapped {
                return Err(ctx.corrupt_at_path(
                    &path,
                    format!(
                        "data size {} exceeds the {mapped} bytes its data runs map",
                        desc.data_size
                    ),
                ));
            }
        }
        if desc.is_encrypted() && desc.resident.is_none() {
            return Err(ctx.error(
                Location::Path(path.clone()),
                rehost_core::ErrorKind::Unsupported(
                    "the file is EFS-encrypted; its bytes cannot be read offline".into(),
                ),
            ));
        }
        Ok(Stream {
            dev,
            desc,
            cluster: cluster as u64,
            ctx,
            path,
        })
    }

    /// The description of the value.
    pub fn desc(&self) -> &StreamDesc {
        &self.desc
    }

    /// The physical extents of the value, in stream order (clipped to the data size).
    pub fn extents(&self) -> Vec<Extent> {
        let mut out = Vec::new();
        for r in &self.desc.runs {
            let offset = r.vcn.saturating_mul(self.cluster);
            if offset >= self.desc.data_size {
                break;
            }
            let len = r
                .len
                .saturating_mul(self.cluster)
                .min(self.desc.data_size - offset);
            out.push(Extent {
                offset,
                volume_offset: r.lcn.map(|l| l * self.cluster),
                len,
            });
        }
        out
    }

    fn run_index(&self, vcn: u64) -> Option<usize> {
        let i = self.desc.runs.partition_point(|r| r.vcn + r.len <= vcn);
        self.desc.runs.get(i).filter(|r| r.vcn <= vcn).map(|_| i)
    }

    fn unmapped(&self, vcn: u64) -> rehost_core::Error {
        self.ctx.corrupt_at_path(
            &self.path,
            format!("no data run maps cluster {vcn} of the stream"),
        )
    }

    /// Reads plain (uncompressed) bytes below the initialized size.
    fn read_plain(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let vcn = pos / self.cluster;
            let i = self.run_index(vcn).ok_or_else(|| self.unmapped(vcn))?;
            let run = self.desc.runs[i];
            let run_end = (run.vcn + run.len).saturating_mul(self.cluster);
            let n = ((run_end - pos) as usize).min(buf.len() - done);
            let piece = &mut buf[done..done + n];
            match run.lcn {
                None => piece.fill(0),
                Some(lcn) => self
                    .dev
                    .read_at(lcn * self.cluster + (pos - run.vcn * self.cluster), piece)?,
            }
            done += n;
        }
        Ok(())
    }

    /// Reads through compression units, decompressing those stored in fewer clusters.
    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let unit_clusters = 1u64 << self.desc.compression_unit;
        let unit_bytes = unit_clusters * self.cluster;
        let mut unit_buf = vec![0u8; unit_bytes as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let unit = pos / unit_bytes;
            let unit_start = unit * unit_bytes;
            let from = (pos - unit_start) as usize;
            let n = (unit_bytes as usize - from).min(buf.len() - done);
            self.load_unit(unit * unit_clusters, unit_clusters, &mut unit_buf)?;
            buf[done..done + n].copy_from_slice(&unit_buf[from..from + n]);
            done += n;
        }
        Ok(())
    }

    /// Fills `out` with one compression unit starting at `vcn`.
    fn load_unit(&self, vcn: u64, clusters: u64, out: &mut [u8]) -> Result<()> {
        let mut stored = 0u64;
        let mut v = vcn;
        while v < vcn + clusters {
            let Some(i) = self.run_index(v) else { break };
            let r = self.desc.runs[i];
            let n = (r.vcn + r.len).min(vcn + clusters) - v;
            if r.lcn.is_some() {
                stored += n;
            }
            v += n;
        }
        if stored == clusters {
            return self.read_plain(vcn * self.cluster, out);
        }
        if stored == 0 {
            out.fill(0);
            return Ok(());
        }
        // The unit's stored clusters hold LZNT1 chunks; read them in VCN order.
        let mut packed = vec![0u8; (stored * self.cluster) as usize];
        let mut filled = 0usize;
        let mut v = vcn;
        while v < vcn + clusters && filled < packed.len() {
            let Some(i) = self.run_index(v) else { break };
            let r = self.desc.runs[i];
            let n = (r.vcn + r.len).min(vcn + clusters) - v;
            if let Some(lcn) = r.lcn {
                let bytes = (n * self.cluster) as usize;
                let at = (lcn + (v - r.vcn)) * self.cluster;
                self.dev.read_at(at, &mut packed[filled..filled + bytes])?;
                filled += bytes;
            }
            v += n;
        }
        lznt1::decompress(&packed, out).map_err(|e| {
            self.ctx.corrupt_at_path(
                &self.path,
                format!("compression unit at cluster {vcn}: {e}"),
            )
        })
    }
}

impl ReadAt for Stream {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = self.desc.data_size;
        if !rehost_core::io::in_bounds(offset, buf.len(), size) {
            return Err(self.ctx.error(
                Location::Path(self.path.clone()),
                rehost_core::ErrorKind::OutOfBounds {
                    offset,
                    len: buf.len() as u64,
                    size,
                },
            ));
        }
        if let Some(v) = &self.desc.resident {
            let s = offset as usize;
            buf.copy_from_slice(&v[s..s + buf.len()]);
            return Ok(());
        }
        // Past the initialized size the value reads as zeros, whatever the clusters hold.
        let init = self.desc.initialized_size;
        let live = if offset >= init {
            0
        } else {
            ((init - offset) as usize).min(buf.len())
        };
        buf[live..].fill(0);
        if live == 0 {
            return Ok(());
        }
        if self.desc.is_compressed() {
            self.read_compressed(offset, &mut buf[..live])
        } else {
            self.read_plain(offset, &mut buf[..live])
        }
    }

    fn size(&self) -> u64 {
        self.desc.data_size
    }
}
