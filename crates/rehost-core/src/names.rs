//! Names taken from input (an INF's file and folder names, a cabinet's members, a file
//! name that becomes a path in an image) checked before they are joined onto a directory:
//! [`contained`] accepts a relative name only when it stays inside that directory on the
//! host and in Windows alike.
//!
//! ```
//! use rehost_core::names::contained;
//! assert_eq!(contained(r"amd64\viostor.sys").unwrap(), ["amd64", "viostor.sys"]);
//! assert!(contained(r"..\..\outside.sys").is_err());
//! assert!(contained(r"C:\Windows\win.ini").is_err());
//! assert!(contained("NUL.sys").is_err());
//! ```

use std::fmt;

/// A name [`contained`] refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeName {
    /// The name as it was given.
    pub name: String,
    /// Why it was refused.
    pub why: &'static str,
}

impl fmt::Display for UnsafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters shown escaped, the rest (`\` above all) as it stands.
        f.write_str("`")?;
        for c in self.name.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        write!(f, "` {}", self.why)
    }
}

impl std::error::Error for UnsafeName {}

/// Whether Windows takes `part` for a device whatever folder it is in: CON, PRN, AUX,
/// NUL, COM1-9, LPT1-9 (and with a superscript 1-3), CONIN$, CONOUT$, in any case, with
/// or without an extension, trailing spaces ignored.
fn is_device(part: &str) -> bool {
    let base = part.split('.').next().unwrap_or("").trim_end_matches(' ');
    let upper = base.to_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    let digit = upper
        .strip_prefix("COM")
        .or_else(|| upper.strip_prefix("LPT"));
    matches!(
        digit,
        Some("1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
    )
}

/// The parts of `name` (separated by `\` or `/`; `.` and empty parts dropped) when it is a
/// relative name that stays inside the directory it is joined to; else why not: an
/// absolute path (a leading `\` or `/`, which `\\?\`, `\\.\` and UNC paths have), a drive
/// letter or any `:` (a drive, or an NTFS stream), a `..` part (or one of dots and spaces
/// alone, which Windows reads as one), a device name (CON, NUL, COM1, LPT1, ...), a control
/// character, or nothing left at all.
pub fn contained(name: &str) -> Result<Vec<&str>, UnsafeName> {
    let refuse = |why| {
        Err(UnsafeName {
            name: name.to_string(),
            why,
        })
    };
    if name.starts_with(['\\', '/']) {
        return refuse("is an absolute path");
    }
    if name.contains(':') {
        return refuse("names a drive or a stream (`:`)");
    }
    if name.chars().any(char::is_control) {
        return refuse("holds a control character");
    }
    let mut parts = Vec::new();
    for part in name.split(['\\', '/']) {
        if part.is_empty() || part == "." {
            continue;
        }
        if part.trim_end_matches(['.', ' ']).is_empty() {
            return refuse("climbs out of its directory (`..`)");
        }
        if is_device(part) {
            return refuse("names a device (CON, PRN, AUX, NUL, COM1-9, LPT1-9)");
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return refuse("names no file");
    }
    Ok(parts)
}

/// [`contained`], for a name that must be one part (a file name, no folder): why not, if
/// it is not.
pub fn single(name: &str) -> Result<&str, UnsafeName> {
    match contained(name)?.as_slice() {
        [one] => Ok(one),
        _ => Err(UnsafeName {
            name: name.to_string(),
            why: "is a path where a file name alone is expected",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_inside_their_directory_pass() {
        for (name, parts) in [
            ("viostor.sys", vec!["viostor.sys"]),
            (r"amd64\viostor.sys", vec!["amd64", "viostor.sys"]),
            ("w7/x86/viostor.inf", vec!["w7", "x86", "viostor.inf"]),
            (r".\sub\\.\a.b", vec!["sub", "a.b"]),
            ("..a", vec!["..a"]),
            ("a..", vec!["a.."]),
            ("console.sys", vec!["console.sys"]),
            ("COM10", vec!["COM10"]),
            ("LPT0.sys", vec!["LPT0.sys"]),
            ("nulls", vec!["nulls"]),
            ("QT\u{fffd}Y", vec!["QT\u{fffd}Y"]),
            ("é.sys", vec!["é.sys"]),
        ] {
            assert_eq!(contained(name), Ok(parts), "{name}");
        }
        assert_eq!(single("viostor.sys"), Ok("viostor.sys"));
    }

    #[test]
    fn names_that_leave_or_name_devices_are_refused() {
        for (name, why) in [
            (r"..\..\outside.sys", "climbs out"),
            ("../outside.sys", "climbs out"),
            (r"sub\..\..\x", "climbs out"),
            ("..", "climbs out"),
            (r"... \x", "climbs out"),
            (r"a\.. \b", "climbs out"),
            (r"\Windows\x.sys", "absolute"),
            ("/etc/passwd", "absolute"),
            (r"\\?\C:\x.sys", "absolute"),
            (r"\\.\PhysicalDrive0", "absolute"),
            (r"\\server\share\x", "absolute"),
            (r"C:\Windows\x.sys", "drive"),
            ("C:x.sys", "drive"),
            ("x.sys:stream", "drive"),
            ("CON", "device"),
            ("nul.sys", "device"),
            (r"sub\Com1.inf", "device"),
            ("LPT9", "device"),
            ("aux .txt", "device"),
            ("CONOUT$", "device"),
            ("COM¹", "device"),
            ("a\u{0}b", "control"),
            ("tab\there", "control"),
        ] {
            let e = contained(name).expect_err(name);
            assert!(e.why.contains(why), "{name}: {e}");
            assert_eq!(e.name, name);
        }
        assert_eq!(
            contained("a\u{1}b").unwrap_err().to_string(),
            "`a\\u{1}b` holds a control character"
        );
        for (name, why) in [("", "no file"), (r".\.\", "no file")] {
            let e = contained(name).expect_err(name);
            assert!(e.why.contains(why), "{name}: {e}");
            assert_eq!(e.name, name);
        }
        let e = single(r"sub\x.sys").unwrap_err();
        assert_eq!(
            e.to_string(),
            r"`sub\x.sys` is a path where a file name alone is expected"
        );
    }
}
