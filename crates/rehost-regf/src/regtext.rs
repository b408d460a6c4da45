//! Reading .reg text (regedit's "Windows Registry Editor Version 5.00" format, UTF-8 or
//! UTF-16 with a byte order mark): keys to create or delete, values to set or delete.

use crate::Error;

/// One line of meaning in a .reg file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `[KEY]`: create the key if needed; the values that follow belong to it.
    Key(String),
    /// `[-KEY]`: delete the key and everything below it.
    DeleteKey(String),
    /// `"name"=data` (`@` is the default value, name "").
    Set {
        /// Value name.
        name: String,
        /// Registry type number.
        kind: u32,
        /// The data as stored.
        data: Vec<u8>,
    },
    /// `"name"=-`: delete the value.
    DeleteValue(String),
}

/// Text of a .reg file: UTF-16LE when it starts with FF FE, else UTF-8 (a BOM skipped).
pub fn decode(bytes: &[u8]) -> String {
    if bytes.starts_with(&[0xFF, 0xFE]) {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
        String::from_utf8_lossy(b).into_owned()
    }
}

/// Reads a quoted string starting at `s[0] == '"'`; returns it and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            other => out.push(other),
        }
    }
    None
}

/// An error at line `line`.
fn at(line: usize, what: impl Into<String>) -> Error {
    Error::Line {
        line,
        what: what.into(),
    }
}

fn hex_bytes(s: &str, line: usize) -> Result<Vec<u8>, Error> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            u8::from_str_radix(t, 16).map_err(|_| at(line, format!("{t:?} is not a hex byte")))
        })
        .collect()
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

/// The data of `value` (everything after `=`) on line `line`.
fn data(value: &str, line: usize) -> Result<Option<(u32, Vec<u8>)>, Error> {
    let v = value.trim();
    if v == "-" {
        return Ok(None);
    }
    if v.starts_with('"') {
        let (s, rest) = quoted(v).ok_or_else(|| at(line, "unterminated string"))?;
        if !rest.trim().is_empty() {
            return Err(at(line, format!("text after the string: {rest:?}")));
        }
        return Ok(Some((1, utf16z(&s))));
    }
    if let Some(d) = v.strip_prefix("dword:") {
        let n = u32::from_str_radix(d.trim(), 16)
            .map_err(|_| at(line, format!("dword {d:?} is not 8 hex digits")))?;
        return Ok(Some((4, n.to_le_bytes().to_vec())));
    }
    if let Some(h) = v.strip_prefix("hex:") {
        return Ok(Some((3, hex_bytes(h, line)?)));
    }
    if let Some(rest) = v.strip_prefix("hex(") {
        let (kind, h) = rest
            .split_once("):")
            .ok_or_else(|| at(line, "hex( without ):"))?;
        let kind = u32::from_str_radix(kind, 16)
            .map_err(|_| at(line, format!("type {kind:?} is not hex")))?;
        return Ok(Some((kind, hex_bytes(h, line)?)));
    }
    Err(at(line, format!("cannot read value data {v:?}")))
}

/// Parses .reg text into operations, in order; a line that cannot be read is an
/// [`Error::Line`] with its number.
pub fn parse(text: &str) -> Result<Vec<Op>, Error> {
    let mut ops = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut in_key = false;
    while let Some((n, raw)) = lines.next() {
        let mut line = raw.trim_end().to_string();
        // Continuation lines: a trailing backslash joins the next line.
        while line.ends_with('\\') && !line.trim_start().starts_with('[') {
            line.pop();
            match lines.next() {
                Some((_, more)) => line.push_str(more.trim()),
                None => break,
            }
        }
        let t = line.trim();
        let err = |what: String| at(n + 1, what);
        if t.is_empty()
            || t.starts_with(';')
            || t.starts_with("Windows Registry Editor")
            || t == "REGEDIT4"
        {
            continue;
        }
        if let Some(k) = t.strip_prefix("[-").and_then(|k| k.strip_suffix(']')) {
            ops.push(Op::DeleteKey(k.to_string()));
            in_key = false;
            continue;
        }
        if let Some(k) = t.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
            ops.push(Op::Key(k.to_string()));
            in_key = true;
            continue;
        }
        if !in_key {
            return Err(err("a value outside any key".into()));
        }
        let (name, rest) = if let Some(r) = t.strip_prefix('@') {
            (String::new(), r)
        } else if t.starts_with('"') {
            quoted(t).ok_or_else(|| err("unterminated value name".into()))?
        } else {
            return Err(err(format!("cannot read {t:?}")));
        };
        let v = rest
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(|| err("no '=' after the value name".into()))?;
        match data(v, n + 1)? {
            Some((kind, data)) => ops.push(Op::Set { name, kind, data }),
            None => ops.push(Op::DeleteValue(name)),
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form() {
        let text = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\A]\r\n\
            @=\"d\\\"q\\\\\"\r\n\"n\"=dword:0000002a\r\n\"b\"=hex:01,02,\\\r\n  03\r\n\
            \"m\"=hex(7):61,00,00,00,00,00\r\n\"gone\"=-\r\n\r\n[-HKEY_LOCAL_MACHINE\\SYSTEM\\B]\r\n";
        let ops = parse(text).unwrap();
        assert_eq!(ops[0], Op::Key("HKEY_LOCAL_MACHINE\\SYSTEM\\A".into()));
        assert_eq!(
            ops[1],
            Op::Set {
                name: "".into(),
                kind: 1,
                data: utf16z("d\"q\\")
            }
        );
        assert_eq!(
            ops[2],
            Op::Set {
                name: "n".into(),
                kind: 4,
                data: 42u32.to_le_bytes().to_vec()
            }
        );
        assert_eq!(
            ops[3],
            Op::Set {
                name: "b".into(),
                kind: 3,
                data: vec![1, 2, 3]
            }
        );
        assert_eq!(
            ops[4],
            Op::Set {
                name: "m".into(),
                kind: 7,
                data: vec![0x61, 0, 0, 0, 0, 0]
            }
        );
        assert_eq!(ops[5], Op::DeleteValue("gone".into()));
        assert_eq!(
            ops[6],
            Op::DeleteKey("HKEY_LOCAL_MACHINE\\SYSTEM\\B".into())
        );
        assert!(parse("\"x\"=dword:1\r\n").is_err());
        assert!(parse("[K]\r\n\"x\"=dword:zz\r\n")
            .unwrap_err()
            .to_string()
            .starts_with("line 2"));
    }

    #[test]
    fn a_line_that_cannot_be_read_is_matched_by_its_number() {
        let text = "Windows Registry Editor Version 5.00\r\n\r\n[K]\r\n\"a\"=dword:1\r\n\
            \"b\"=hex:01,\\\r\n  zz\r\n";
        match parse(text) {
            Err(Error::Line { line: 5, what }) => assert_eq!(what, "\"zz\" is not a hex byte"),
            other => panic!("{other:?}"),
        }
        let e = rehost_core::Ctx::new("fix.reg", rehost_core::Layer::Hive)
            .locate(parse("\"x\"=dword:1\r\n").unwrap_err());
        assert!(matches!(e.location, rehost_core::Location::Line(1)));
        assert!(matches!(e.kind, rehost_core::ErrorKind::Invalid(_)));
        assert_eq!(
            e.to_string(),
            "fix.reg: hive at line 1: a value outside any key"
        );
    }
}
