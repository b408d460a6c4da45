//! Editing boot.ini text as NT setup and bootcfg leave it: lines kept as they are (CRLF,
//! comments, other entries), an entry added under `[operating systems]`, `default=` moved,
//! the ARC paths of entries rewritten. Edits compose: each takes the text the last one left.

/// An edit of boot.ini.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Adds an entry (`ARC="description" switches`); the existing entries are kept. As the
    /// default, it goes first in `[operating systems]` and `default=` names its ARC path:
    /// ntldr starts the first line whose path `default=` names, and the old entry for the
    /// same install keeps that path. Otherwise it goes after the last entry. An entry with
    /// the same target and switches is not added twice.
    AddEntry {
        /// The ARC path (`multi(0)disk(0)rdisk(0)partition(1)\WINDOWS`).
        arc: String,
        /// Menu text, without quotes.
        description: String,
        /// Switches, as written (`/fastdetect /HAL=halmacpi.dll /KERNEL=ntkrnlmp.exe`).
        switches: String,
        /// Make it `default=`.
        default: bool,
    },
    /// Every target (entry or `default=`) equal to `from` (ignoring case) becomes `to`.
    RewriteArc {
        /// The ARC path as written.
        from: String,
        /// The new one.
        to: String,
    },
}

fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") || !text.contains('\n') {
        "\r\n"
    } else {
        "\n"
    }
}

/// The target of an entry line (before `=`), if the line is one.
fn target_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with(';') || t.starts_with('[') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim())
}

/// Applies `edit` to boot.ini `text`.
pub fn apply(text: &str, edit: &Edit) -> String {
    let nl = newline(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    match edit {
        Edit::RewriteArc { from, to } => {
            for l in &lines {
                let low = l.trim_start().to_ascii_lowercase();
                match l.split_once('=') {
                    Some((k, v))
                        if low.starts_with("default") && v.trim().eq_ignore_ascii_case(from) =>
                    {
                        out.push(format!("{k}={to}"));
                    }
                    Some((k, v)) if k.trim().eq_ignore_ascii_case(from) => {
                        out.push(format!("{to}={v}"));
                    }
                    _ => out.push(l.to_string()),
                }
            }
        }
        Edit::AddEntry {
            arc,
            description,
            switches,
            default,
        } => {
            let entry = format!("{arc}=\"{description}\" {switches}")
                .trim_end()
                .to_string();
            let exists = lines.iter().any(|l| l.trim().eq_ignore_ascii_case(&entry));
            let mut section = String::new();
            let mut last_entry: Option<usize> = None;
            let mut os_header: Option<usize> = None;
            for l in &lines {
                let t = l.trim();
                if t.starts_with('[') {
                    section = t.to_ascii_lowercase();
                    if section == "[operating systems]" {
                        os_header = Some(out.len());
                    }
                }
                let low = t.to_ascii_lowercase();
                if *default
                    && section == "[boot loader]"
                    && low.starts_with("default")
                    && t.contains('=')
                {
                    let (k, _) = l.split_once('=').unwrap_or((l, ""));
                    out.push(format!("{k}={arc}"));
                    continue;
                }
                if section == "[operating systems]" && target_of(l).is_some() {
                    last_entry = Some(out.len());
                }
                out.push(l.to_string());
            }
            if !exists {
                let at = if *default {
                    os_header.or(last_entry)
                } else {
                    last_entry.or(os_header)
                };
                match at {
                    Some(i) => out.insert(i + 1, entry),
                    None => {
                        out.push("[operating systems]".into());
                        out.push(entry);
                    }
                }
            }
        }
    }
    let mut s = out.join(nl);
    if text.ends_with('\n') || text.is_empty() {
        s.push_str(nl);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS\r\n[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS=\"Windows Server 2003\" /fastdetect\r\nC:\\CMDCONS\\BOOTSECT.DAT=\"Recovery Console\" /cmdcons\r\n";

    #[test]
    fn entries_are_added_as_the_default_and_paths_rewritten() {
        let arc = "multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS";
        let added = apply(
            INI,
            &Edit::AddEntry {
                arc: arc.into(),
                description: "Windows Server 2003 (rehost: ACPI multiprocessor HAL)".into(),
                switches: "/fastdetect /HAL=halmacpi.dll /KERNEL=ntkrnlmp.exe".into(),
                default: true,
            },
        );
        let ini = super::super::parse(added.as_bytes());
        assert_eq!(ini.entries.len(), 3);
        let d = ini.default_entry().unwrap();
        assert_eq!(d.target, arc);
        assert_eq!(d.hal.as_deref(), Some("halmacpi.dll"));
        assert!(added.contains("\r\n") && !added.contains("\r\r"));
        // Added once only.
        let again = apply(
            &added,
            &Edit::AddEntry {
                arc: arc.into(),
                description: "Windows Server 2003 (rehost: ACPI multiprocessor HAL)".into(),
                switches: "/fastdetect /HAL=halmacpi.dll /KERNEL=ntkrnlmp.exe".into(),
                default: true,
            },
        );
        assert_eq!(again, added);
        let moved = apply(
            &added,
            &Edit::RewriteArc {
                from: arc.into(),
                to: "multi(0)disk(0)rdisk(0)partition(2)\\WINDOWS".into(),
            },
        );
        let ini = super::super::parse(moved.as_bytes());
        assert!(ini.entries.iter().filter(|e| e.arc.is_some()).all(|e| e
            .arc
            .as_ref()
            .unwrap()
            .partition
            == 2));
        assert_eq!(
            ini.default_entry().unwrap().arc.as_ref().unwrap().partition,
            2
        );
        assert!(moved.contains("C:\\CMDCONS\\BOOTSECT.DAT"));
    }
}
