//! The qcow2 header (QEMU's docs/interop/qcow2.txt, "Header") and its extensions.

use crate::{HostFile, ReadAt};
use rehost_core::error::{Ctx, Result};

/// Incompatible feature bits (version 3).
pub const DIRTY: u64 = 1 << 0;
/// The image was marked corrupt by QEMU.
pub const CORRUPT: u64 = 1 << 1;
/// Guest clusters are stored in an external data file.
pub const EXTERNAL_DATA_FILE: u64 = 1 << 2;
/// The header's compression type field is valid.
pub const COMPRESSION_TYPE: u64 = 1 << 3;
/// L2 entries are 128 bits: the cluster descriptor and a subcluster bitmap.
pub const EXTENDED_L2: u64 = 1 << 4;
const KNOWN_INCOMPATIBLE: u64 =
    DIRTY | CORRUPT | EXTERNAL_DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;

/// Header extension types.
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FULL_DISK_ENCRYPTION: u32 = 0x0537_be77;
const EXT_EXTERNAL_DATA_FILE: u32 = 0x4441_5441;
/// The feature name table: names for feature bits, nothing outside the header.
pub const EXT_FEATURE_NAME_TABLE: u32 = 0x6803_f857;
/// The bitmaps extension: persistent dirty bitmaps, whose directory, tables and data
/// occupy clusters of their own.
pub const EXT_BITMAPS: u32 = 0x2385_2875;
/// The header extensions that refer to nothing outside the first cluster: their bytes are
/// the header cluster's (the full disk encryption header is never met here: encrypted
/// images are refused at open).
pub const EXT_IN_HEADER: [u32; 3] = [
    EXT_BACKING_FORMAT,
    EXT_FEATURE_NAME_TABLE,
    EXT_EXTERNAL_DATA_FILE,
];

/// Largest L1 table read (QEMU's limit too): 32 MiB of entries.
pub const MAX_L1_BYTES: u64 = 32 << 20;

/// The fields of a qcow2 header that reading needs.
#[derive(Debug, Clone)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// Where the backing file's name is, and its length (0: no backing file).
    pub backing_file_offset: u64,
    /// Length of the backing file's name.
    pub backing_file_size: u32,
    /// log2 of the cluster size (9 to 21).
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// 0: none; 1: AES; 2: LUKS.
    pub crypt_method: u32,
    /// Entries in the active L1 table.
    pub l1_size: u32,
    /// Offset of the active L1 table.
    pub l1_table_offset: u64,
    /// Offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters the refcount table occupies.
    pub refcount_table_clusters: u32,
    /// Internal snapshots.
    pub nb_snapshots: u32,
    /// Offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits (0 for version 2).
    pub incompatible_features: u64,
    /// Compatible feature bits (0 for version 2); bit 0: lazy refcounts.
    pub compatible_features: u64,
    /// log2 of a refcount's width in bits (4 for version 2).
    pub refcount_order: u32,
    /// 0: deflate; 1: zstd.
    pub compression_type: u8,
    /// The backing file format the header extension names, if any.
    pub backing_format: Option<String>,
    /// The external data file the header extension names, if any.
    pub data_file: Option<String>,
    /// The type of every header extension, in order (the end marker left out).
    pub extensions: Vec<u32>,
}

impl Header {
    /// Parses the header and its extensions from the first cluster of `file`.
    pub fn read(file: &HostFile, ctx: &Ctx) -> Result<Header> {
        let mut b = vec![0u8; 104];
        if file.read_some_at(0, &mut b)? < 72 {
            return Err(ctx.corrupt(0, "file too small for a qcow2 header"));
        }
        let be32 = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let be64 = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let version = be32(4);
        if version != 2 && version != 3 {
            return Err(ctx.unsupported(4, format!("qcow2 version {version} (2 and 3 are read)")));
        }
        let mut h = Header {
            version,
            backing_file_offset: be64(8),
            backing_file_size: be32(16),
            cluster_bits: be32(20),
            size: be64(24),
            crypt_method: be32(32),
            l1_size: be32(36),
            l1_table_offset: be64(40),
            refcount_table_offset: be64(48),
            refcount_table_clusters: be32(56),
            nb_snapshots: be32(60),
            snapshots_offset: be64(64),
            incompatible_features: 0,
            compatible_features: 0,
            refcount_order: 4,
            compression_type: 0,
            backing_format: None,
            data_file: None,
            extensions: Vec::new(),
        };
        if !(9..=21).contains(&h.cluster_bits) {
            return Err(ctx.corrupt(
                20,
                format!("cluster_bits {} is outside 9..=21", h.cluster_bits),
            ));
        }
        let mut header_length = 72u64;
        if version == 3 {
            if file.size() < 104 {
                return Err(ctx.corrupt(0, "file too small for a version 3 qcow2 header"));
            }
            h.incompatible_features = be64(72);
            h.compatible_features = be64(80);
            h.refcount_order = be32(96);
            header_length = be32(100) as u64;
            if header_length < 104 || header_length > h.cluster_size() {
                return Err(ctx.corrupt(
                    100,
                    format!("header_length {header_length} is outside 104..=cluster size"),
                ));
            }
            if header_length > 104 {
                let mut t = [0u8; 1];
                file.read_some_at(104, &mut t)?;
                h.compression_type = t[0];
            }
        }
        let unknown = h.incompatible_features & !KNOWN_INCOMPATIBLE;
        if unknown != 0 {
            return Err(ctx.unsupported(
                72,
                format!("incompatible features {unknown:#x} that rehost does not know"),
            ));
        }
        if h.compression_type > 1 {
            return Err(ctx.unsupported(104, format!("compression type {}", h.compression_type)));
        }
        h.read_extensions(file, ctx, header_length)?;
        Ok(h)
    }

    /// Bytes in a cluster.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Whether an incompatible feature bit is set.
    pub fn has(&self, feature: u64) -> bool {
        self.incompatible_features & feature != 0
    }

    /// Reads the header extensions, which lie between the header and the end of the first
    /// cluster.
    fn read_extensions(&mut self, file: &HostFile, ctx: &Ctx, start: u64) -> Result<()> {
        let end = self.cluster_size().min(file.size());
        let mut at = start;
        while at + 8 <= end {
            let mut e = [0u8; 8];
            file.read_at(at, &mut e)?;
            let kind = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let len = u32::from_be_bytes([e[4], e[5], e[6], e[7]]) as u64;
            if kind == EXT_END {
                return Ok(());
            }
            if at + 8 + len > end {
                return Err(ctx.corrupt(
                    at,
                    format!(
                        "header extension {kind:#x} of {len} bytes runs past the first cluster"
                    ),
                ));
            }
            let mut data = vec![0u8; len as usize];
            file.read_at(at + 8, &mut data)?;
            let text = || {
                String::from_utf8_lossy(&data)
                    .trim_end_matches('\0')
                    .to_string()
            };
            self.extensions.push(kind);
            match kind {
                EXT_BACKING_FORMAT => self.backing_format = Some(text()),
                EXT_EXTERNAL_DATA_FILE => self.data_file = Some(text()),
                EXT_FULL_DISK_ENCRYPTION => {}
                _ => {}
            }
            at += 8 + len.div_ceil(8) * 8;
        }
        Ok(())
    }
}
