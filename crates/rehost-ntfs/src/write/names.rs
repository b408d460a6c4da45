//! The values the writer builds for a new name: `$FILE_NAME` (also the key of its `$I30`
//! entry), `$STANDARD_INFORMATION`, and the 8.3 alias Windows gives a long name.
//!
//! `$FILE_NAME`: parent reference (0x00), creation, modification, MFT change and access
//! times (0x08-0x20), allocated and data size (0x28, 0x30), file attributes (0x38),
//! reparse tag (0x3C), name length in UTF-16 units (0x40), name space (0x41), name (0x42).

use super::record::put;
use crate::upcase::UpCase;

/// Name space codes of `$FILE_NAME`.
pub mod namespace {
    /// Case-sensitive POSIX name.
    pub const POSIX: u8 = 0;
    /// Long Windows name with a separate 8.3 alias.
    pub const WIN32: u8 = 1;
    /// The 8.3 alias of a Win32 name.
    pub const DOS: u8 = 2;
    /// A name that is its own 8.3 alias.
    pub const WIN32_AND_DOS: u8 = 3;
}

/// `FILE_ATTRIBUTE_ARCHIVE`, what Windows gives a file it creates.
pub const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
/// `FILE_ATTRIBUTE_SPARSE_FILE`.
pub const FILE_ATTRIBUTE_SPARSE_FILE: u32 = 0x200;
/// `FILE_ATTRIBUTE_REPARSE_POINT`.
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
/// `FILE_ATTRIBUTE_COMPRESSED`.
pub const FILE_ATTRIBUTE_COMPRESSED: u32 = 0x800;
/// `FILE_ATTRIBUTE_ENCRYPTED`.
pub const FILE_ATTRIBUTE_ENCRYPTED: u32 = 0x4000;

/// Offsets of `$FILE_NAME` fields.
pub mod fnoff {
    /// Parent directory reference.
    pub const PARENT: usize = 0x00;
    /// First of the four times.
    pub const TIMES: usize = 0x08;
    /// Allocated size.
    pub const ALLOCATED: usize = 0x28;
    /// Data size.
    pub const DATA: usize = 0x30;
    /// File attributes.
    pub const ATTRIBUTES: usize = 0x38;
    /// Name length.
    pub const NAME_LEN: usize = 0x40;
    /// Name space.
    pub const NAMESPACE: usize = 0x41;
    /// The name.
    pub const NAME: usize = 0x42;
}

/// A file reference: record number and sequence number.
pub fn file_ref(record: u64, sequence: u16) -> u64 {
    (record & 0x0000_FFFF_FFFF_FFFF) | ((sequence as u64) << 48)
}

/// Builds a `$FILE_NAME` value.
pub fn file_name(
    parent: u64,
    time: u64,
    allocated: u64,
    size: u64,
    attributes: u32,
    ns: u8,
    name: &[u16],
) -> Vec<u8> {
    let mut b = vec![0u8; fnoff::NAME + 2 * name.len()];
    put::u64(&mut b, fnoff::PARENT, parent);
    for i in 0..4 {
        put::u64(&mut b, fnoff::TIMES + 8 * i, time);
    }
    put::u64(&mut b, fnoff::ALLOCATED, allocated);
    put::u64(&mut b, fnoff::DATA, size);
    put::u32(&mut b, fnoff::ATTRIBUTES, attributes);
    b[fnoff::NAME_LEN] = name.len() as u8;
    b[fnoff::NAMESPACE] = ns;
    for (i, u) in name.iter().enumerate() {
        put::u16(&mut b, fnoff::NAME + 2 * i, *u);
    }
    b
}

/// Builds a `$STANDARD_INFORMATION` value of `len` bytes (0x30 for NTFS 1.2, 0x48 for
/// 3.x) with all four times set to `time`.
pub fn standard_information(
    len: usize,
    time: u64,
    attributes: u32,
    owner: u32,
    security: u32,
) -> Vec<u8> {
    let mut b = vec![0u8; len];
    for i in 0..4 {
        put::u64(&mut b, 8 * i, time);
    }
    put::u32(&mut b, 0x20, attributes);
    if len >= 0x48 {
        put::u32(&mut b, 0x30, owner);
        put::u32(&mut b, 0x34, security);
    }
    b
}

pub use rehost_core::time::filetime_now;

/// Checks a name Windows could create: 1 to 255 UTF-16 units, not `.` or `..`, none of
/// `"*/:<>?\|` nor control characters, not ending in a space or a dot, not a device name
/// (CON, NUL.txt, COM1, ...). Returns why not.
pub fn check_win32_name(name: &[u16]) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 255 {
        return Err("a name must have 1 to 255 UTF-16 units");
    }
    let dots: [u16; 2] = [b'.' as u16; 2];
    if name == &dots[..1] || name == dots {
        return Err("`.` and `..` cannot be created");
    }
    if name
        .iter()
        .any(|&u| u < 0x20 || "\"*/:<>?\\|".encode_utf16().any(|b| b == u))
    {
        return Err("a name may not hold control characters or any of \" * / : < > ? \\ |");
    }
    if matches!(name.last(), Some(&u) if u == b' ' as u16 || u == b'.' as u16) {
        return Err("Windows cannot open a name that ends in a space or a dot");
    }
    if is_device_name(name) {
        return Err(
            "CON, PRN, AUX, NUL, COM1 to COM9 and LPT1 to LPT9 name devices in Windows, \
             with or without an extension: Windows cannot open such a file",
        );
    }
    Ok(())
}

/// Whether Windows takes `name` for a device (CON, PRN, AUX, NUL, COM1-9, LPT1-9, in any
/// case, the part before the first dot with trailing spaces dropped): `CON`, `nul.txt`.
fn is_device_name(name: &[u16]) -> bool {
    let base = name.split(|&u| u == b'.' as u16).next().unwrap_or(&[]);
    let base = String::from_utf16_lossy(base)
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    match base.as_bytes() {
        b"CON" | b"PRN" | b"AUX" | b"NUL" => true,
        [b'C', b'O', b'M', d] | [b'L', b'P', b'T', d] => (b'1'..=b'9').contains(d),
        _ => false,
    }
}

fn short_char_ok(u: u16) -> bool {
    matches!(u, 0x30..=0x39 | 0x41..=0x5A) || "!#$%&'()-@^_`{}~".encode_utf16().any(|c| c == u)
}

/// Whether `name` is a valid 8.3 name once upper-cased: it then serves as its own alias
/// (name space Win32 and DOS) and needs no separate one.
pub fn is_short_name(name: &[u16], up: &UpCase) -> bool {
    let upper: Vec<u16> = name.iter().map(|u| up.up(*u)).collect();
    let dot = b'.' as u16;
    let (base, ext) = match upper.iter().position(|u| *u == dot) {
        Some(p) => (&upper[..p], &upper[p + 1..]),
        None => (&upper[..], &[][..]),
    };
    !base.is_empty()
        && base.len() <= 8
        && ext.len() <= 3
        && !(upper.contains(&dot) && ext.is_empty())
        && base.iter().chain(ext).all(|u| short_char_ok(*u))
}

/// The 8.3 alias Windows would give `name` (`LONGNA~1.TXT`): upper case, spaces and all
/// dots but the last dropped, other characters an 8.3 name cannot hold turned into `_`,
/// six characters of the base and a `~N` tail, three of the extension. `taken` says whether
/// a candidate already exists in the directory; the first free one is returned.
pub fn short_name(
    name: &[u16],
    up: &UpCase,
    taken: &mut dyn FnMut(&[u16]) -> bool,
) -> Option<Vec<u16>> {
    let dot = b'.' as u16;
    let last_dot = name.iter().rposition(|u| *u == dot);
    let clean = |part: &[u16]| -> Vec<u16> {
        part.iter()
            .filter(|u| **u != b' ' as u16 && **u != dot)
            .map(|u| {
                let c = up.up(*u);
                if short_char_ok(c) {
                    c
                } else {
                    b'_' as u16
                }
            })
            .collect()
    };
    let (mut base, mut ext) = match last_dot {
        Some(p) => (clean(&name[..p]), clean(&name[p + 1..])),
        None => (clean(name), Vec::new()),
    };
    if base.is_empty() {
        std::mem::swap(&mut base, &mut ext);
    }
    if base.is_empty() {
        base = vec![b'_' as u16];
    }
    ext.truncate(3);
    for n in 1u32..=999_999 {
        let tail: Vec<u16> = format!("~{n}").encode_utf16().collect();
        let keep = (8 - tail.len()).min(6).min(base.len());
        let mut cand: Vec<u16> = base[..keep].to_vec();
        cand.extend(&tail);
        if !ext.is_empty() {
            cand.push(dot);
            cand.extend(&ext);
        }
        if !taken(&cand) {
            return Some(cand);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn short_names_as_windows_makes_them() {
        let up = UpCase::fallback();
        assert!(is_short_name(&u("hal.dll"), &up));
        assert!(is_short_name(&u("NTLDR"), &up));
        assert!(!is_short_name(&u("hal.dll.rehost-orig"), &up));
        assert!(!is_short_name(&u("a b.txt"), &up));
        assert!(!is_short_name(&u("été.txt"), &up));
        let mut none = |_: &[u16]| false;
        assert_eq!(
            short_name(&u("Long File Name.txt"), &up, &mut none),
            Some(u("LONGFI~1.TXT"))
        );
        assert_eq!(
            short_name(&u("hal.dll.rehost-orig"), &up, &mut none),
            Some(u("HALDLL~1.REH"))
        );
        let mut taken = |c: &[u16]| c == u("PROGRA~1") || c == u("PROGRA~2");
        assert_eq!(
            short_name(&u("Program Files"), &up, &mut taken),
            Some(u("PROGRA~3"))
        );
        assert_eq!(short_name(&u("a+b=c"), &up, &mut none), Some(u("A_B_C~1")));
    }

    #[test]
    fn win32_name_rules() {
        assert!(check_win32_name(&u("hal.dll")).is_ok());
        assert!(check_win32_name(&u("a:b")).is_err());
        assert!(check_win32_name(&u("x.")).is_err());
        assert!(check_win32_name(&u("..")).is_err());
        assert!(check_win32_name(&[]).is_err());
        assert!(check_win32_name(&vec![0x61; 256]).is_err());
    }
}
