//! boot.ini, the NT 5.x boot loader's menu: `[boot loader]` (timeout, default) and
//! `[operating systems]` (one ARC path per line with a description and switches).

pub mod edit;

use serde::Serialize;

/// An ARC path: `multi(0)disk(0)rdisk(1)partition(2)\WINDOWS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcPath {
    /// The adapter kind: "multi", "scsi" or "signature".
    pub adapter: String,
    /// The disk signature of a `signature(...)` path.
    pub signature: Option<String>,
    /// `rdisk(N)`: the BIOS disk ordinal.
    pub rdisk: u32,
    /// `partition(M)`, counted from 1.
    pub partition: u32,
    /// The system root on that partition (`\WINDOWS`).
    pub path: String,
}

/// One line of `[operating systems]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The target as written.
    pub target: String,
    /// The target as an ARC path, when it is one (`C:\CMDCONS\BOOTSECT.DAT` is not).
    pub arc: Option<ArcPath>,
    /// The menu text.
    pub description: String,
    /// Switches as written (`/fastdetect`, `/HAL=halmacpi.dll`, ...).
    pub switches: Vec<String>,
    /// The `/HAL=` file, if any.
    pub hal: Option<String>,
    /// The `/KERNEL=` file, if any.
    pub kernel: Option<String>,
}

/// A parsed boot.ini.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootIni {
    /// `timeout=`.
    pub timeout: Option<u32>,
    /// `default=` as written.
    pub default: Option<String>,
    /// The entries, in order.
    pub entries: Vec<Entry>,
}

impl BootIni {
    /// The entry `default=` names (compared without regard to case): the first with that
    /// path, as ntldr chooses.
    pub fn default_entry(&self) -> Option<&Entry> {
        self.entries.get(self.default_index()?)
    }

    /// The position in [`BootIni::entries`] of [`BootIni::default_entry`].
    pub fn default_index(&self) -> Option<usize> {
        let d = self.default.as_deref()?;
        self.entries
            .iter()
            .position(|e| e.target.eq_ignore_ascii_case(d))
    }
}

/// Parses an ARC path; `None` if it is not one.
pub fn parse_arc(s: &str) -> Option<ArcPath> {
    let lower = s.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut fields: Vec<(String, String)> = Vec::new();
    while let Some(open) = rest.find('(') {
        let name = rest[..open].to_string();
        let close = rest[open..].find(')')? + open;
        fields.push((name, rest[open + 1..close].to_string()));
        rest = &rest[close + 1..];
        if rest.starts_with('\\') || rest.is_empty() {
            break;
        }
    }
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let adapter = fields.first()?.0.clone();
    if !matches!(adapter.as_str(), "multi" | "scsi" | "signature") {
        return None;
    }
    let path_start = s.len() - rest.len();
    Some(ArcPath {
        signature: (adapter == "signature").then(|| fields[0].1.clone()),
        adapter,
        rdisk: get("rdisk").and_then(|v| v.parse().ok()).unwrap_or(0),
        partition: get("partition")?.parse().ok()?,
        path: s[path_start..].to_string(),
    })
}

/// Parses boot.ini text (bytes in the system's ANSI code page; non-ASCII is replaced).
pub fn parse(text: &[u8]) -> BootIni {
    let text = String::from_utf8_lossy(text);
    let mut section = String::new();
    let mut ini = BootIni {
        timeout: None,
        default: None,
        entries: Vec::new(),
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match section.as_str() {
            "boot loader" => match key.to_ascii_lowercase().as_str() {
                "timeout" => ini.timeout = value.parse().ok(),
                "default" => ini.default = Some(value.to_string()),
                _ => {}
            },
            "operating systems" => {
                let (description, switches) =
                    match value.strip_prefix('"').and_then(|v| v.split_once('"')) {
                        Some((d, rest)) => (d.to_string(), rest),
                        None => (String::new(), value),
                    };
                let switches: Vec<String> =
                    switches.split_whitespace().map(str::to_string).collect();
                let switch = |name: &str| {
                    switches.iter().find_map(|s| {
                        let (k, v) = s.split_once('=')?;
                        k.eq_ignore_ascii_case(name).then(|| v.to_string())
                    })
                };
                ini.entries.push(Entry {
                    target: key.to_string(),
                    arc: parse_arc(key),
                    description,
                    hal: switch("/HAL"),
                    kernel: switch("/KERNEL"),
                    switches,
                });
            }
            _ => {}
        }
    }
    ini
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_switches_and_arc_paths() {
        let ini = parse(
            b"[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(2)\\WINDOWS\r\n\
              [operating systems]\r\n\
              multi(0)disk(0)rdisk(0)partition(2)\\WINDOWS=\"Windows Server 2003\" /fastdetect /HAL=halmacpi.dll /KERNEL=ntkrnlmp.exe\r\n\
              signature(5cbea03e)disk(0)rdisk(1)partition(1)\\WINNT=\"Windows 2000\"\r\n\
              C:\\CMDCONS\\BOOTSECT.DAT=\"Recovery Console\" /cmdcons\r\n",
        );
        assert_eq!(ini.timeout, Some(30));
        assert_eq!(ini.entries.len(), 3);
        let d = ini.default_entry().unwrap();
        assert_eq!(d.hal.as_deref(), Some("halmacpi.dll"));
        assert_eq!(d.kernel.as_deref(), Some("ntkrnlmp.exe"));
        let arc = d.arc.as_ref().unwrap();
        assert_eq!(
            (arc.rdisk, arc.partition, arc.path.as_str()),
            (0, 2, "\\WINDOWS")
        );
        let sig = ini.entries[1].arc.as_ref().unwrap();
        assert_eq!(sig.signature.as_deref(), Some("5cbea03e"));
        assert_eq!(
            (sig.rdisk, sig.partition, sig.path.as_str()),
            (1, 1, "\\WINNT")
        );
        assert!(ini.entries[2].arc.is_none());
    }
}
