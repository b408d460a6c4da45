//! The text sections of an EWF2 image (device information, case data): a serialized object,
//! UTF-16 with a byte-order mark, compressed by the image's method. rehost reads the one
//! object `main`: its line of tags and the line of values under it, tab-separated.

use rehost_core::error::{Ctx, Result};

/// The most bytes a text section may inflate to.
const MAX_TEXT: usize = 1 << 20;

/// The tags and values of a text section's `main` object.
#[derive(Debug, Default, Clone)]
pub struct Object {
    pairs: Vec<(String, String)>,
}

impl Object {
    /// The value of `tag`, where it is given and not empty.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The value of `tag` as a number; `None` where it is not given, an error where it is
    /// not a number.
    pub fn number(&self, tag: &str, what: &str, ctx: &Ctx, at: u64) -> Result<Option<u64>> {
        self.get(tag)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    ctx.corrupt(at, format!("{what} gives `{tag}` as `{v}`, not a number"))
                })
            })
            .transpose()
    }
}

/// Decodes the data of a text section (`what` names it), stored by compression method
/// `compression` (0 none, 1 zlib), `padding` bytes at its end not part of it.
pub fn read(data: &[u8], compression: u16, what: &str, ctx: &Ctx, at: u64) -> Result<Object> {
    let bytes = match compression {
        0 => data.to_vec(),
        _ => miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, MAX_TEXT).map_err(
            |e| {
                ctx.corrupt(
                    at,
                    format!(
                        "{what} section does not inflate ({:?}; at most {MAX_TEXT} bytes are read)",
                        e.status
                    ),
                )
            },
        )?,
    };
    let text = utf16(&bytes);
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    // The number of objects, the object's name, its tags, its values.
    if lines.len() < 4 || lines[1] != "main" {
        return Err(ctx.corrupt(at, format!("{what} section does not hold a `main` object")));
    }
    let pairs = lines[2]
        .split('\t')
        .zip(lines[3].split('\t'))
        .map(|(t, v)| (t.to_string(), v.to_string()))
        .collect();
    Ok(Object { pairs })
}

/// UTF-16 text by its byte-order mark (little-endian without one); an odd last byte and
/// unpaired surrogates become U+FFFD.
fn utf16(b: &[u8]) -> String {
    let (big, body) = match b {
        [0xfe, 0xff, rest @ ..] => (true, rest),
        [0xff, 0xfe, rest @ ..] => (false, rest),
        _ => (false, b),
    };
    let units = body.chunks_exact(2).map(|p| {
        if big {
            u16::from_be_bytes([p[0], p[1]])
        } else {
            u16::from_le_bytes([p[0], p[1]])
        }
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> Vec<u8> {
        let mut b = vec![0xff, 0xfe];
        b.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
        miniz_oxide::deflate::compress_to_vec_zlib(&b, 6)
    }

    #[test]
    fn the_main_object_gives_its_values_by_tag() {
        let ctx = Ctx::new("t.Ex01", rehost_core::Layer::Ewf);
        let z = encode("1\nmain\nsn\tts\tbp\tdt\n\t8228\t512\tf\n\n");
        let o = read(&z, 1, "device information", &ctx, 0).unwrap();
        assert_eq!(o.get("sn"), None);
        assert_eq!(o.number("ts", "d", &ctx, 0).unwrap(), Some(8228));
        assert_eq!(o.get("dt"), Some("f"));
        let bad = encode("1\nmain\nts\nmany\n");
        let o = read(&bad, 1, "device information", &ctx, 0).unwrap();
        assert!(o.number("ts", "d", &ctx, 0).is_err());
        assert!(read(&encode("1\nother\n\n\n"), 1, "case data", &ctx, 0).is_err());
        assert!(read(b"not zlib", 1, "case data", &ctx, 0).is_err());
    }
}
