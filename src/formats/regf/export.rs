//! Export to .reg text, as regedit writes it ("Windows Registry Editor Version 5.00"):
//! every type, strings quoted when they round-trip, `hex(N):` otherwise.

use super::cells::{CellError, Cells, Nk, Vk};

/// Deepest key tree exported (a loop in a damaged hive stops here).
pub const MAX_DEPTH: usize = 512;

/// Registry type numbers.
pub const REG_SZ: u32 = 1;
/// REG_EXPAND_SZ.
pub const REG_EXPAND_SZ: u32 = 2;
/// REG_BINARY.
pub const REG_BINARY: u32 = 3;
/// REG_DWORD.
pub const REG_DWORD: u32 = 4;
/// REG_MULTI_SZ.
pub const REG_MULTI_SZ: u32 = 7;
/// REG_QWORD.
pub const REG_QWORD: u32 = 11;

/// The header line of .reg files.
pub const HEADER: &str = "Windows Registry Editor Version 5.00";

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A REG_SZ that can be written as a quoted string: UTF-16 with one terminating NUL.
fn as_string(data: &[u8]) -> Option<String> {
    if data.len() % 2 != 0 || data.len() < 2 {
        return None;
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let (last, body) = units.split_last()?;
    // A string holding a NUL, or a line break that would split the line, is written as
    // hex(1) so that the text reads back to the same bytes.
    if *last != 0 || body.iter().any(|u| *u == 0 || *u == 0x0A || *u == 0x0D) {
        return None;
    }
    String::from_utf16(body).ok()
}

/// `hex:`-style bytes, wrapped like regedit at about 80 columns (a `\` ends each line,
/// the next is indented by two spaces). `prefix` is what precedes the bytes on the line.
fn hex(prefix: &str, data: &[u8]) -> String {
    let mut out = String::from(prefix);
    let mut col = prefix.len();
    for (i, b) in data.iter().enumerate() {
        let last = i + 1 == data.len();
        let item = if last {
            format!("{b:02x}")
        } else {
            format!("{b:02x},")
        };
        if col + item.len() > 79 && !last {
            out.push_str("\\\r\n  ");
            col = 2;
        }
        out.push_str(&item);
        col += item.len();
    }
    out
}

/// One value's line.
pub fn value_line(name: &str, kind: u32, data: &[u8]) -> String {
    let key = if name.is_empty() {
        "@".to_string()
    } else {
        quote(name)
    };
    match kind {
        REG_SZ => match as_string(data) {
            Some(s) => format!("{key}={}", quote(&s)),
            None => hex(&format!("{key}=hex(1):"), data),
        },
        REG_DWORD if data.len() == 4 => {
            format!(
                "{key}=dword:{:08x}",
                u32::from_le_bytes([data[0], data[1], data[2], data[3]])
            )
        }
        REG_BINARY => hex(&format!("{key}=hex:"), data),
        other => hex(&format!("{key}=hex({other:x}):"), data),
    }
}

fn key_block(out: &mut String, path: &str, cells: &Cells, nk: &Nk) -> Result<(), CellError> {
    out.push_str(&format!("[{path}]\r\n"));
    for off in cells.values(nk)? {
        let vk: Vk = cells.vk(off)?;
        let data = cells.data(&vk)?;
        out.push_str(&value_line(&vk.name, vk.kind, &data));
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Ok(())
}

/// Exports the key `nk` and everything below it, under the name `path`
/// (`HKEY_LOCAL_MACHINE\SYSTEM\Select`).
pub fn export(cells: &Cells, nk: &Nk, path: &str) -> Result<String, CellError> {
    let mut out = format!("{HEADER}\r\n\r\n");
    let mut stack = vec![(nk.clone(), path.to_string(), 0usize)];
    let mut seen = std::collections::HashSet::new();
    while let Some((k, p, depth)) = stack.pop() {
        if !seen.insert(k.offset) {
            return Err(CellError {
                offset: k.offset,
                what: "key tree loops back on itself".into(),
            });
        }
        if depth > MAX_DEPTH {
            return Err(CellError {
                offset: k.offset,
                what: format!("key tree deeper than {MAX_DEPTH}"),
            });
        }
        key_block(&mut out, &p, cells, &k)?;
        let mut children = Vec::new();
        for off in cells.subkeys(&k)? {
            let c = cells.nk(off)?;
            let cp = format!("{p}\\{}", c.name);
            children.push((c, cp, depth + 1));
        }
        // Depth first, in list order: push in reverse.
        stack.extend(children.into_iter().rev());
    }
    Ok(out)
}
