//! The hive engine's one error type: what its parsers of bytes and text say when they
//! cannot go on, with where (a cell, a line, a key).
//!
//! These parsers are given bytes or text, not an image, so their error names no image;
//! [`rehost_core::Ctx::locate`] makes it a [`rehost_core::Error`] of the image and layer
//! of the caller's context, at the cell or line it names.

use rehost_core::{ErrorKind, Located, Location};

/// Why a hive could not be read or edited, or .reg text read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A cell that could not be read or edited: damaged, or not what the reader expected
    /// there (the hive is corrupt).
    Cell {
        /// Cell offset (relative to the hive bins data).
        offset: u32,
        /// What is wrong.
        what: String,
    },
    /// A line of .reg text that could not be read.
    Line {
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Value data written as text (a command line's) that could not be read.
    Data(String),
    /// A key of a .reg file that does not belong to the hive, or cannot be edited there.
    Key(String),
    /// An edit the hive refused at a key: the cell that refused it.
    Edit {
        /// The key's path in the hive.
        key: String,
        /// Cell offset (relative to the hive bins data).
        offset: u32,
        /// What is wrong.
        what: String,
    },
    /// The edited hive did not read back the same through an independent parser (nt-hive).
    Rejected(String),
}

impl Error {
    /// A cell error at `offset`.
    pub fn cell(offset: u32, what: impl Into<String>) -> Error {
        Error::Cell {
            offset,
            what: what.into(),
        }
    }

    /// A cell error met while editing the key `key`, as an [`Error::Edit`] (other errors
    /// are returned as they are).
    pub fn at_key(self, key: &str) -> Error {
        match self {
            Error::Cell { offset, what } => Error::Edit {
                key: key.to_string(),
                offset,
                what,
            },
            other => other,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Cell { offset, what } => write!(f, "cell {offset:#x}: {what}"),
            Error::Line { line, what } => write!(f, "line {line}: {what}"),
            Error::Data(why) | Error::Key(why) => f.write_str(why),
            Error::Edit { key, offset, what } => write!(f, "at {key}: cell {offset:#x}: {what}"),
            Error::Rejected(why) => write!(f, "the edited hive did not read back: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A damaged cell or a hive that did not read back is corrupt; a .reg line, value data, a
/// key or an edit the hive cannot take is an invalid request. The message leaves out what
/// the location says (the cell, the line, the key).
impl From<Error> for ErrorKind {
    fn from(e: Error) -> ErrorKind {
        match e {
            Error::Cell { what, .. } => ErrorKind::Corrupt(what),
            Error::Line { what, .. } => ErrorKind::Invalid(what),
            Error::Data(why) | Error::Key(why) => ErrorKind::Invalid(why),
            Error::Edit { offset, what, .. } => {
                ErrorKind::Invalid(format!("cell {offset:#x}: {what}"))
            }
            e @ Error::Rejected(_) => ErrorKind::Corrupt(e.to_string()),
        }
    }
}

impl Located for Error {
    fn location(&self) -> Location {
        match self {
            Error::Cell { offset, .. } => Location::Cell(*offset),
            Error::Line { line, .. } => Location::Line(*line),
            Error::Edit { key, .. } => Location::Path(key.clone()),
            Error::Data(_) | Error::Key(_) | Error::Rejected(_) => Location::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::{Ctx, Layer};

    #[test]
    fn a_cell_error_becomes_a_corrupt_error_at_its_cell() {
        let e = Ctx::new("SYSTEM", Layer::Hive).locate(Error::cell(0x20, "not a key node"));
        assert!(matches!(
            (&e.location, &e.kind),
            (Location::Cell(0x20), ErrorKind::Corrupt(_))
        ));
        assert_eq!(e.to_string(), "SYSTEM: hive at cell 0x20: not a key node");
        let e = Error::cell(0x20, "full").at_key("Select");
        assert_eq!(e.to_string(), "at Select: cell 0x20: full");
        let e = Ctx::new("SYSTEM", Layer::Hive).locate(e);
        assert!(matches!(&e.location, Location::Path(p) if p == "Select"));
        assert_eq!(e.to_string(), "SYSTEM: hive at Select: cell 0x20: full");
    }
}
