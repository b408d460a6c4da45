//! Export to .reg text, as regedit writes it ("Windows Registry Editor Version 5.00"):
//! every type, strings quoted when they round-trip, `hex(N):` otherwise.

use super::cells::{Cells, Nk, Vk};
use crate::Error;

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

fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
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

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `hex:`-style bytes, wrapped like regedit at about 80 columns (a `\` ends each line,
/// the next is indented by two spaces), appended to `out`; `col` is the column the bytes
/// start at.
fn hex_into(out: &mut String, mut col: usize, data: &[u8]) {
    out.reserve(data.len() * 3 + data.len() / 25 * 5);
    for (i, b) in data.iter().enumerate() {
        let last = i + 1 == data.len();
        let width = if last { 2 } else { 3 };
        if col + width > 79 && !last {
            out.push_str("\\\r\n  ");
            col = 2;
        }
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
        if !last {
            out.push(',');
        }
        col += width;
    }
}

/// One value's line.
pub fn value_line(name: &str, kind: u32, data: &[u8]) -> String {
    let mut out = String::new();
    value_into(&mut out, name, kind, data);
    out
}

/// One value's line, appended to `out` (without the line break).
pub fn value_into(out: &mut String, name: &str, kind: u32, data: &[u8]) {
    let start = out.len();
    if name.is_empty() {
        out.push('@');
    } else {
        quote_into(out, name);
    }
    out.push('=');
    match kind {
        REG_SZ => {
            if let Some(s) = as_string(data) {
                quote_into(out, &s);
                return;
            }
            out.push_str("hex(1):");
        }
        REG_DWORD if data.len() == 4 => {
            let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            out.push_str(&format!("dword:{v:08x}"));
            return;
        }
        REG_BINARY => out.push_str("hex:"),
        other => out.push_str(&format!("hex({other:x}):")),
    }
    let col = out.len() - start;
    hex_into(out, col, data);
}

fn key_block(out: &mut String, path: &str, cells: &Cells, nk: &Nk) -> Result<(), Error> {
    out.push('[');
    out.push_str(path);
    out.push_str("]\r\n");
    for off in cells.values(nk)? {
        let vk: Vk = cells.vk(off)?;
        let data = cells.data(&vk)?;
        value_into(out, &vk.name, vk.kind, &data);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Ok(())
}

/// Exports the key `nk` and everything below it, under the name `path`
/// (`HKEY_LOCAL_MACHINE\SYSTEM\Select`).
pub fn export(cells: &Cells, nk: &Nk, path: &str) -> Result<String, Error> {
    let mut out = format!("{HEADER}\r\n\r\n");
    let mut stack = vec![(nk.clone(), path.to_string(), 0usize)];
    let mut seen = std::collections::HashSet::new();
    while let Some((k, p, depth)) = stack.pop() {
        if !seen.insert(k.offset) {
            return Err(Error::Cell {
                offset: k.offset,
                what: "key tree loops back on itself".into(),
            });
        }
        if depth > MAX_DEPTH {
            return Err(Error::Cell {
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
