//! Registry value types by name (the msuhanov/regf specification's table), and value data
//! written the way reg.exe takes it on a command line.

/// Type numbers and their names.
pub const TYPES: [(u32, &str); 12] = [
    (0, "REG_NONE"),
    (1, "REG_SZ"),
    (2, "REG_EXPAND_SZ"),
    (3, "REG_BINARY"),
    (4, "REG_DWORD"),
    (5, "REG_DWORD_BIG_ENDIAN"),
    (6, "REG_LINK"),
    (7, "REG_MULTI_SZ"),
    (8, "REG_RESOURCE_LIST"),
    (9, "REG_FULL_RESOURCE_DESCRIPTOR"),
    (10, "REG_RESOURCE_REQUIREMENTS_LIST"),
    (11, "REG_QWORD"),
];

/// The name of a type number (`0x1234` for one without a name).
pub fn name(kind: u32) -> String {
    TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("{kind:#x}"))
}

/// The type number a name (any case, with or without `REG_`) or a number (`0x20000`, `7`)
/// stands for.
pub fn parse(name: &str) -> Option<u32> {
    let n = name.trim();
    let full = if n.to_ascii_uppercase().starts_with("REG_") {
        n.to_ascii_uppercase()
    } else {
        format!("REG_{}", n.to_ascii_uppercase())
    };
    if let Some((k, _)) = TYPES.iter().find(|(_, t)| *t == full) {
        return Some(*k);
    }
    match n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => n.parse().ok(),
    }
}

use crate::Error;

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

fn number(text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| Error::Data(format!("{t:?} is not a number (decimal, or hex with 0x)")))
}

/// Value data from command-line text, by type: strings as they are (REG_MULTI_SZ items
/// separated by `\0`, as reg.exe takes them), numbers in decimal or `0x` hex, anything else
/// as hex bytes (`01,02,ff` or `0102ff`). Text that cannot be read is an [`Error::Data`].
pub fn data(kind: u32, text: &str) -> Result<Vec<u8>, Error> {
    match kind {
        1 | 2 => Ok(utf16z(text)),
        7 => {
            let mut out = Vec::new();
            if !text.is_empty() {
                for item in text.split("\\0") {
                    out.extend(utf16z(item));
                }
            }
            out.extend([0, 0]);
            Ok(out)
        }
        4 => {
            let n = number(text)?;
            u32::try_from(n)
                .map(|v| v.to_le_bytes().to_vec())
                .map_err(|_| Error::Data(format!("{n} does not fit in a REG_DWORD")))
        }
        5 => {
            let n = number(text)?;
            u32::try_from(n)
                .map(|v| v.to_be_bytes().to_vec())
                .map_err(|_| Error::Data(format!("{n} does not fit in a REG_DWORD_BIG_ENDIAN")))
        }
        11 => Ok(number(text)?.to_le_bytes().to_vec()),
        _ => {
            let digits: String = text.chars().filter(|c| !matches!(c, ',' | ' ')).collect();
            if digits.len() % 2 != 0 {
                return Err(Error::Data(format!(
                    "{text:?}: an odd number of hex digits"
                )));
            }
            (0..digits.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| {
                        Error::Data(format!("{:?} is not a hex byte", &digits[i..i + 2]))
                    })
                })
                .collect()
        }
    }
}

/// Data as reg.exe shows it: strings as text, REG_MULTI_SZ items joined by `\0`, numbers in
/// hex, anything else (or a string that does not decode) as hex digits.
pub fn show(kind: u32, data: &[u8]) -> String {
    let utf16 = |d: &[u8]| -> Option<Vec<u16>> {
        (d.len() % 2 == 0).then(|| {
            d.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        })
    };
    match kind {
        1 | 2 => {
            if let Some(mut u) = utf16(data) {
                while u.last() == Some(&0) {
                    u.pop();
                }
                if let Ok(s) = String::from_utf16(&u) {
                    return s;
                }
            }
        }
        7 => {
            if let Some(u) = utf16(data) {
                let items: Vec<String> = u
                    .split(|c| *c == 0)
                    .filter(|s| !s.is_empty())
                    .map(String::from_utf16_lossy)
                    .collect();
                return items.join("\\0");
            }
        }
        4 if data.len() == 4 => {
            return format!(
                "{:#x}",
                u32::from_le_bytes([data[0], data[1], data[2], data[3]])
            )
        }
        5 if data.len() == 4 => {
            return format!(
                "{:#x}",
                u32::from_be_bytes([data[0], data[1], data[2], data[3]])
            )
        }
        11 if data.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(data);
            return format!("{:#x}", u64::from_le_bytes(b));
        }
        _ => {}
    }
    data.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_data_round_trip() {
        assert_eq!(parse("dword"), Some(4));
        assert_eq!(parse("REG_MULTI_SZ"), Some(7));
        assert_eq!(parse("0x20000"), Some(0x20000));
        assert_eq!(name(0x20000), "0x20000");
        for (k, text) in [
            (1, "a b"),
            (7, "x\\0y"),
            (4, "0x2a"),
            (11, "0x1122334455"),
            (3, "01FF"),
        ] {
            let d = data(k, text).unwrap();
            assert_eq!(show(k, &d), text, "type {k}");
        }
        assert_eq!(data(4, "42").unwrap(), 42u32.to_le_bytes());
        assert!(data(4, "0x100000000").is_err());
        assert_eq!(
            data(3, "0"),
            Err(Error::Data("\"0\": an odd number of hex digits".into()))
        );
    }
}
