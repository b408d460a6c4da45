//! Typed errors that say where they happened: the image, the layer and the offset or path.
//!
//! Every library error carries the image it came from, the layer that noticed the problem
//! ([`Layer`]), a [`Location`] (a byte offset inside that layer's address space, or a path
//! inside a file system) and a typed [`ErrorKind`]. The `Display` form reads
//! `image.vhdx: vhdx: at offset 0x300000: BAT entry 3 points past the end of the file`.

use std::fmt;
use std::sync::Arc;

/// The layer of the stack that noticed a problem (see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The host file holding the image (open, read, map).
    File,
    /// A raw image.
    Raw,
    /// A VHD container.
    Vhd,
    /// A VHDX container.
    Vhdx,
    /// A VMware VMDK container: its descriptor, extents and sparse extents.
    Vmdk,
    /// A QEMU qcow2 container.
    Qcow2,
    /// An Expert Witness (EWF, E01) evidence file: its segment files, sections and chunks.
    Ewf,
    /// The undo journal beside an image written in place.
    Journal,
    /// A partition table or volume detection.
    Volume,
    /// An MBR partition table.
    Mbr,
    /// A GPT partition table.
    Gpt,
    /// An NTFS file system.
    Ntfs,
    /// The Volume Shadow Copy (VSS) structures of an NTFS volume: its snapshots.
    Vss,
    /// A FAT file system.
    Fat,
    /// A registry hive.
    Hive,
    /// A PE image (driver, DLL, executable).
    Pe,
    /// A BCD store.
    Bcd,
    /// A boot.ini file.
    BootIni,
    /// A cabinet archive.
    Cab,
    /// A driver INF file.
    Inf,
    /// The Windows install model.
    Windows,
    /// The target profiles, the rules and their fixes.
    Rules,
    /// A run over many images.
    Fleet,
}

impl Layer {
    /// The short lower-case name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Layer::File => "file",
            Layer::Raw => "raw",
            Layer::Vhd => "vhd",
            Layer::Vhdx => "vhdx",
            Layer::Vmdk => "vmdk",
            Layer::Qcow2 => "qcow2",
            Layer::Ewf => "ewf",
            Layer::Journal => "journal",
            Layer::Volume => "volume",
            Layer::Mbr => "mbr",
            Layer::Gpt => "gpt",
            Layer::Ntfs => "ntfs",
            Layer::Vss => "vss",
            Layer::Fat => "fat",
            Layer::Hive => "hive",
            Layer::Pe => "pe",
            Layer::Bcd => "bcd",
            Layer::BootIni => "boot.ini",
            Layer::Cab => "cab",
            Layer::Inf => "inf",
            Layer::Windows => "windows",
            Layer::Rules => "rules",
            Layer::Fleet => "fleet",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where inside a layer the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Nowhere in particular (the layer as a whole).
    None,
    /// A byte offset in the layer's own address space (file offset for containers,
    /// disk offset for partition tables, volume offset for file systems).
    Offset(u64),
    /// A path inside a file system.
    Path(String),
    /// A line of a text file (a .reg file, an INF file), counted from 1.
    Line(usize),
    /// A cell of a registry hive, by its offset from the start of the hive bins data (the
    /// offset in the hive file less the 4096 bytes of the base block).
    Cell(u32),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::None => Ok(()),
            Location::Offset(o) => write!(f, " at offset {o:#x}"),
            Location::Path(p) => write!(f, " at {p}"),
            Location::Line(n) => write!(f, " at line {n}"),
            Location::Cell(c) => write!(f, " at cell {c:#x}"),
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The operating system refused an I/O operation.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A structure on disk is inconsistent or damaged.
    #[error("{0}")]
    Corrupt(String),
    /// The structure is valid but uses a feature rehost does not read.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A name looked up does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A read asked for bytes beyond the end of the device.
    #[error("read of {len} bytes at {offset:#x} is past the end ({size:#x} bytes)")]
    OutOfBounds {
        /// First byte asked for.
        offset: u64,
        /// Bytes asked for.
        len: u64,
        /// Size of the device.
        size: u64,
    },
    /// The request itself does not make sense (a bad argument).
    #[error("{0}")]
    Invalid(String),
    /// A write was refused because the image is in a state where writing would lose data
    /// (the message says why and what to do).
    #[error("refused: {0}")]
    Refused(String),
    /// A write in place refused because the volume has Volume Shadow Copy snapshots, which
    /// such a write would leave out of step with it (the caller may allow it).
    #[error("refused: volume {volume} {}", shadow_copies_said(*.count, *.damaged))]
    ShadowCopies {
        /// The volume, numbered as the image's layout numbers it.
        volume: u32,
        /// The shadow copies its catalog lists (those read, when it is damaged).
        count: usize,
        /// The catalog could not be read whole: there may be more.
        damaged: bool,
    },
}

/// Why a write in place into a volume with shadow copies is refused, after "volume N".
fn shadow_copies_said(count: usize, damaged: bool) -> String {
    let what = match (count, damaged) {
        (n, false) => format!(
            "has {n} shadow cop{} (Volume Shadow Copy snapshots)",
            if n == 1 { "y" } else { "ies" }
        ),
        (n, true) => format!(
            "has a damaged shadow copy catalog ({n} shadow cop{} read from it before the damage, \
             perhaps more)",
            if n == 1 { "y" } else { "ies" }
        ),
    };
    format!(
        "{what}: a write in place that Windows' shadow copy driver does not see is not \
         copied into them, so each snapshot would read the new bytes as its own and no longer \
         match the volume as it was when it was made; write a new image instead (--output), \
         or allow it (--allow-shadow-copies) and the snapshots become stale"
    )
}

/// A rehost library error: the image, the layer, the location and what went wrong.
#[derive(Debug)]
pub struct Error {
    /// The image file (or the member of a differencing chain) the error belongs to.
    pub image: Arc<str>,
    /// The layer that noticed it.
    pub layer: Layer,
    /// Where in that layer.
    pub location: Location,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}{}: {}",
            self.image, self.layer, self.location, self.kind
        )
    }
}

/// The message already includes the underlying I/O error, so no source is chained (a
/// reporter walking the chain would print it twice).
impl std::error::Error for Error {}

/// An error of a layer's own, made where the image is not known (a parser given bytes or
/// text, not a device): it knows what kind of error it is and where in its input it
/// happened, and [`Ctx::locate`] makes it an [`Error`] of the context's image and layer,
/// keeping that location.
pub trait Located: Into<ErrorKind> {
    /// Where in its input the error happened.
    fn location(&self) -> Location;
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cheap, clonable maker of errors for one image and one layer.
///
/// Parsers keep one of these and call [`Ctx::corrupt`] and friends so that every error they
/// return names the image and the layer without repeating them at each call site.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Image name used in messages.
    pub image: Arc<str>,
    /// Layer used in messages.
    pub layer: Layer,
}

impl Ctx {
    /// A context for `image` at `layer`.
    pub fn new(image: impl Into<Arc<str>>, layer: Layer) -> Self {
        Ctx {
            image: image.into(),
            layer,
        }
    }

    /// The same image, another layer.
    pub fn with_layer(&self, layer: Layer) -> Self {
        Ctx {
            image: self.image.clone(),
            layer,
        }
    }

    /// An error of any kind at a location.
    pub fn error(&self, location: Location, kind: ErrorKind) -> Error {
        Error {
            image: self.image.clone(),
            layer: self.layer,
            location,
            kind,
        }
    }

    /// A layer's own error ([`Located`]) as an error of this image and layer, at the
    /// location it knows.
    pub fn locate(&self, e: impl Located) -> Error {
        let location = e.location();
        self.error(location, e.into())
    }

    /// A damaged structure at a byte offset.
    pub fn corrupt(&self, offset: u64, msg: impl Into<String>) -> Error {
        self.error(Location::Offset(offset), ErrorKind::Corrupt(msg.into()))
    }

    /// A damaged structure reached through a path.
    pub fn corrupt_at_path(&self, path: &str, msg: impl Into<String>) -> Error {
        self.error(
            Location::Path(path.to_string()),
            ErrorKind::Corrupt(msg.into()),
        )
    }

    /// An unsupported feature at a byte offset.
    pub fn unsupported(&self, offset: u64, msg: impl Into<String>) -> Error {
        self.error(Location::Offset(offset), ErrorKind::Unsupported(msg.into()))
    }

    /// A name that does not exist.
    pub fn not_found(&self, path: &str) -> Error {
        self.error(
            Location::Path(path.to_string()),
            ErrorKind::NotFound("no such file or directory".to_string()),
        )
    }

    /// An I/O failure at a byte offset.
    pub fn io(&self, offset: u64, e: std::io::Error) -> Error {
        self.error(Location::Offset(offset), ErrorKind::Io(e))
    }

    /// A read past the end of a device of `size` bytes.
    pub fn out_of_bounds(&self, offset: u64, len: u64, size: u64) -> Error {
        self.error(
            Location::Offset(offset),
            ErrorKind::OutOfBounds { offset, len, size },
        )
    }

    /// A bad request.
    pub fn invalid(&self, msg: impl Into<String>) -> Error {
        self.error(Location::None, ErrorKind::Invalid(msg.into()))
    }

    /// A write refused at a path (or the volume as a whole when `path` is empty).
    pub fn refused(&self, path: &str, msg: impl Into<String>) -> Error {
        let location = if path.is_empty() {
            Location::None
        } else {
            Location::Path(path.to_string())
        };
        self.error(location, ErrorKind::Refused(msg.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_image_layer_and_offset() {
        let ctx = Ctx::new("disk.vhdx", Layer::Vhdx);
        let e = ctx.corrupt(0x300000, "BAT entry 3 points past the end of the file");
        assert_eq!(
            e.to_string(),
            "disk.vhdx: vhdx at offset 0x300000: BAT entry 3 points past the end of the file"
        );
        let e = ctx.with_layer(Layer::Ntfs).not_found("\\Windows\\x");
        assert_eq!(
            e.to_string(),
            "disk.vhdx: ntfs at \\Windows\\x: no such file or directory"
        );
    }

    /// A parser's error that knows its line, made an error of an image.
    struct BadLine(usize);

    impl From<BadLine> for ErrorKind {
        fn from(_: BadLine) -> ErrorKind {
            ErrorKind::Invalid("no '=' after the value name".into())
        }
    }

    impl Located for BadLine {
        fn location(&self) -> Location {
            Location::Line(self.0)
        }
    }

    #[test]
    fn a_located_error_keeps_its_line_and_a_cell_reads_as_one() {
        let e = Ctx::new("fix.reg", Layer::Hive).locate(BadLine(7));
        assert!(matches!(
            e,
            Error {
                layer: Layer::Hive,
                location: Location::Line(7),
                kind: ErrorKind::Invalid(_),
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "fix.reg: hive at line 7: no '=' after the value name"
        );
        let e = Ctx::new("SYSTEM", Layer::Hive).error(
            Location::Cell(0x20),
            ErrorKind::Corrupt("not a key node".into()),
        );
        assert_eq!(e.to_string(), "SYSTEM: hive at cell 0x20: not a key node");
    }
}
