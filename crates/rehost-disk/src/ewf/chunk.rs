//! One chunk of the media, from its stored bytes: a zlib stream that must inflate to exactly
//! the chunk's size (its Adler-32 checked by the stream's own trailer), the bytes as they
//! are followed by their Adler-32, or (EWF2) eight bytes of pattern repeated.

use super::section::{adler32, le32};
use super::table::{Chunk, Encoding};
use rehost_core::error::{Ctx, Result};

/// The chunk's `expected` bytes of media from its `stored` bytes; `number` and the chunk's
/// place name it in errors.
pub fn decode(
    c: &Chunk,
    stored: &[u8],
    expected: usize,
    number: u64,
    ctx: &Ctx,
) -> Result<Vec<u8>> {
    let plain = match c.encoding {
        Encoding::Zlib => return inflate(stored, expected, number, ctx, c.offset),
        Encoding::Pattern(p) => return Ok(p.iter().copied().cycle().take(expected).collect()),
        Encoding::Plain => Some(false),
        Encoding::Summed => Some(true),
        Encoding::Stored => None,
    };
    match stored.len() {
        n if n == expected && plain != Some(true) => Ok(stored.to_vec()),
        n if n == expected + 4 && plain != Some(false) => {
            let (data, sum) = stored.split_at(expected);
            let (want, have) = (le32(sum, 0), adler32(data));
            if want != have {
                return Err(ctx.corrupt(
                    c.offset,
                    format!(
                        "chunk {number}: checksum {want:#010x} stored, {have:#010x} computed: \
                         the chunk's bytes are damaged"
                    ),
                ));
            }
            Ok(data.to_vec())
        }
        n => Err(ctx.corrupt(
            c.offset,
            format!(
                "chunk {number} is stored uncompressed in {n} bytes, where {expected} (and a \
                 checksum) are expected"
            ),
        )),
    }
}

/// Inflates a zlib stream into exactly `expected` bytes: one more is room to see that it
/// would give more, and the output never grows past that.
fn inflate(input: &[u8], expected: usize, number: u64, ctx: &Ctx, at: u64) -> Result<Vec<u8>> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
        | inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER;
    let mut out = vec![0u8; expected + 1];
    let mut state = Box::<DecompressorOxide>::default();
    let (status, _, written) = decompress(&mut state, input, &mut out, 0, flags);
    match status {
        TINFLStatus::Done if written == expected => {
            out.truncate(expected);
            Ok(out)
        }
        TINFLStatus::Done if written < expected => Err(ctx.corrupt(
            at,
            format!("chunk {number} inflates to {written} bytes where {expected} are expected"),
        )),
        TINFLStatus::Done | TINFLStatus::HasMoreOutput => Err(ctx.corrupt(
            at,
            format!("chunk {number} inflates to more than the chunk's {expected} bytes"),
        )),
        other => Err(ctx.corrupt(
            at,
            format!(
                "chunk {number} does not inflate ({other:?} after {written} bytes): the \
                 chunk's bytes are damaged"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
    }

    fn chunk(compressed: bool) -> Chunk {
        Chunk {
            segment: 0,
            offset: 100,
            stored: 0,
            encoding: if compressed {
                Encoding::Zlib
            } else {
                Encoding::Stored
            },
        }
    }

    #[test]
    fn a_chunk_inflates_to_its_size_exactly() {
        let ctx = Ctx::new("t.E01", rehost_core::Layer::Ewf);
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let z = zlib(&data);
        assert_eq!(decode(&chunk(true), &z, 4096, 0, &ctx).unwrap(), data);
        let e = decode(&chunk(true), &z, 4000, 0, &ctx).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        let e = decode(&chunk(true), &z, 5000, 0, &ctx).unwrap_err();
        assert!(e.to_string().contains("inflates to 4096"), "{e}");
        let mut bad = z.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        assert!(decode(&chunk(true), &bad, 4096, 0, &ctx).is_err());
    }

    #[test]
    fn an_uncompressed_chunk_keeps_its_checksum() {
        let ctx = Ctx::new("t.E01", rehost_core::Layer::Ewf);
        let mut s = vec![7u8; 512];
        s.extend_from_slice(&adler32(&s).to_le_bytes());
        assert_eq!(
            decode(&chunk(false), &s, 512, 3, &ctx).unwrap(),
            vec![7u8; 512]
        );
        s[10] = 8;
        let e = decode(&chunk(false), &s, 512, 3, &ctx).unwrap_err();
        assert!(e.to_string().contains("chunk 3: checksum"), "{e}");
        assert!(decode(&chunk(false), &s[..300], 512, 3, &ctx).is_err());
    }

    #[test]
    fn ewf2_flags_say_whether_a_checksum_follows() {
        let ctx = Ctx::new("t.Ex01", rehost_core::Layer::Ewf);
        let with = |encoding| Chunk {
            encoding,
            ..chunk(false)
        };
        let mut s = vec![7u8; 512];
        assert_eq!(decode(&with(Encoding::Plain), &s, 512, 0, &ctx).unwrap(), s);
        assert!(decode(&with(Encoding::Summed), &s, 512, 0, &ctx).is_err());
        s.extend_from_slice(&adler32(&s[..512]).to_le_bytes());
        assert!(decode(&with(Encoding::Plain), &s, 512, 0, &ctx).is_err());
        assert_eq!(
            decode(&with(Encoding::Summed), &s, 512, 0, &ctx).unwrap(),
            vec![7u8; 512]
        );
        let p = decode(&with(Encoding::Pattern(*b"abcdefgh")), &[], 20, 0, &ctx).unwrap();
        assert_eq!(p, b"abcdefghabcdefghabcd");
    }
}
