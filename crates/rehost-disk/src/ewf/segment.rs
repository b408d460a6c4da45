//! The names of an evidence file's segment files: `IMAGE.E01` to `IMAGE.E99`, then
//! `IMAGE.EAA`, `IMAGE.EAB` ... `IMAGE.EZZ`, `IMAGE.FAA` ... up to `IMAGE.ZZZ`, in the case
//! of the first file's extension; for EWF2, `IMAGE.Ex01` to `IMAGE.Ex99`, then `IMAGE.ExAA`
//! ... `IMAGE.ExZZ`, `IMAGE.EyAA` ... up to `IMAGE.EzZZ`.

use std::path::{Path, PathBuf};

/// The path of segment `number` (counted from 1) of the image whose first segment is
/// `first`; `None` when the first file's extension is not of the scheme (a letter and two
/// digits) or the number is past the scheme's last name.
pub fn segment_path(first: &Path, number: u32) -> Option<PathBuf> {
    let ext = first.extension()?.to_str()?;
    let b = ext.as_bytes();
    if b.len() != 3 || !b[0].is_ascii_alphabetic() {
        return None;
    }
    let upper = b[0].is_ascii_uppercase();
    let base = b[0].to_ascii_uppercase();
    let name = if number == 0 {
        return None;
    } else if number <= 99 {
        format!("{}{number:02}", base as char)
    } else {
        let m = number - 100;
        let first = u32::from(base) + m / (26 * 26);
        if first > u32::from(b'Z') {
            return None;
        }
        let second = b'A' + (m / 26 % 26) as u8;
        let third = b'A' + (m % 26) as u8;
        format!("{}{}{}", first as u8 as char, second as char, third as char)
    };
    let name = if upper {
        name
    } else {
        name.to_ascii_lowercase()
    };
    Some(first.with_extension(name))
}

/// The path of segment `number` (counted from 1) of the EWF2 image whose first segment is
/// `first` (`.Ex01`); `None` when the first file's extension is not of the scheme (a
/// letter, `x`, two digits) or the number is past `.EzZZ`. The letters after the digits
/// take the case of the extension's first letter.
pub fn segment_path_v2(first: &Path, number: u32) -> Option<PathBuf> {
    let ext = first.extension()?.to_str()?;
    let b = ext.as_bytes();
    if b.len() != 4 || !b[0].is_ascii_alphabetic() || !b[1].eq_ignore_ascii_case(&b'x') {
        return None;
    }
    let upper = b[0].is_ascii_uppercase();
    let case = |c: u8| if upper { c } else { c.to_ascii_lowercase() };
    let name = if number == 0 {
        return None;
    } else if number <= 99 {
        format!("{}{}{number:02}", b[0] as char, b[1] as char)
    } else {
        let m = number - 100;
        let second = u32::from(b[1]) + m / (26 * 26);
        if second > u32::from(b[1]) + 2 {
            return None;
        }
        let third = case(b'A' + (m / 26 % 26) as u8);
        let fourth = case(b'A' + (m % 26) as u8);
        format!(
            "{}{}{}{}",
            b[0] as char, second as u8 as char, third as char, fourth as char
        )
    };
    Some(first.with_extension(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewf2_names_follow_their_scheme() {
        let p = Path::new("/ev/disk.Ex01");
        let n = |i| segment_path_v2(p, i).map(|p| p.display().to_string());
        assert_eq!(n(1).as_deref(), Some("/ev/disk.Ex01"));
        assert_eq!(n(2).as_deref(), Some("/ev/disk.Ex02"));
        assert_eq!(n(99).as_deref(), Some("/ev/disk.Ex99"));
        assert_eq!(n(100).as_deref(), Some("/ev/disk.ExAA"));
        assert_eq!(n(126).as_deref(), Some("/ev/disk.ExBA"));
        assert_eq!(n(100 + 676).as_deref(), Some("/ev/disk.EyAA"));
        assert_eq!(n(100 + 676 * 3 - 1).as_deref(), Some("/ev/disk.EzZZ"));
        assert_eq!(n(100 + 676 * 3), None);
        assert_eq!(n(0), None);
        let lower = segment_path_v2(Path::new("d.ex01"), 100).unwrap();
        assert_eq!(lower, Path::new("d.exaa"));
        assert_eq!(segment_path_v2(Path::new("d.E01"), 2), None);
    }

    #[test]
    fn names_follow_the_scheme() {
        let p = Path::new("/ev/disk.E01");
        let n = |i| segment_path(p, i).map(|p| p.display().to_string());
        assert_eq!(n(1).as_deref(), Some("/ev/disk.E01"));
        assert_eq!(n(2).as_deref(), Some("/ev/disk.E02"));
        assert_eq!(n(99).as_deref(), Some("/ev/disk.E99"));
        assert_eq!(n(100).as_deref(), Some("/ev/disk.EAA"));
        assert_eq!(n(101).as_deref(), Some("/ev/disk.EAB"));
        assert_eq!(n(126).as_deref(), Some("/ev/disk.EBA"));
        assert_eq!(n(100 + 676).as_deref(), Some("/ev/disk.FAA"));
        assert_eq!(n(100 + 676 * 22 - 1).as_deref(), Some("/ev/disk.ZZZ"));
        assert_eq!(n(100 + 676 * 22), None);
        assert_eq!(n(0), None);
        let lower = segment_path(Path::new("d.e01"), 100).unwrap();
        assert_eq!(lower, Path::new("d.eaa"));
        assert_eq!(segment_path(Path::new("d.raw1"), 2), None);
    }
}
