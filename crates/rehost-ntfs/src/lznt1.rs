//! LZNT1, the compression of NTFS compressed files: 4 KiB chunks of LZ77 tokens.
//!
//! A compression unit (16 clusters, usually) is stored either whole (all its clusters
//! allocated), not at all (a hole), or as LZNT1 chunks in fewer clusters with the rest of the
//! unit sparse. Each chunk starts with a 16-bit header: bits 0-11 hold the chunk's length
//! minus 3, bit 15 says whether it is compressed; a zero header ends the data.

/// Size of the output of one chunk.
pub const CHUNK: usize = 4096;

/// Why compressed data could not be decoded: the codec's own error, each variant with the
/// byte of the compressed data where decoding stopped. The codec is given bytes, not a
/// volume: the stream reading a compressed file makes it a corrupt [`rehost_core::Error`]
/// at the file's path, naming the compression unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lznt1Error {
    /// A chunk runs past the end of the compressed data.
    Truncated(usize),
    /// A back-reference points before the start of its chunk.
    BadReference(usize),
    /// The data decodes to more than the output allows.
    Overflow(usize),
}

impl std::fmt::Display for Lznt1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lznt1Error::Truncated(at) => write!(f, "LZNT1 chunk at byte {at} is truncated"),
            Lznt1Error::BadReference(at) => {
                write!(
                    f,
                    "LZNT1 back-reference at byte {at} points before its chunk"
                )
            }
            Lznt1Error::Overflow(at) => write!(f, "LZNT1 data at byte {at} decodes past the unit"),
        }
    }
}

impl std::error::Error for Lznt1Error {}

/// Decompresses `input` into `out`, whose length is the uncompressed unit size. Chunks that
/// decode to less than 4 KiB, and everything after the last chunk, read as zeros.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<(), Lznt1Error> {
    out.fill(0);
    let mut i = 0usize;
    let mut chunk_start = 0usize;
    while i + 2 <= input.len() && chunk_start < out.len() {
        let header = u16::from_le_bytes([input[i], input[i + 1]]);
        if header == 0 {
            break;
        }
        let len = (header & 0x0FFF) as usize + 1;
        let data = input
            .get(i + 2..i + 2 + len)
            .ok_or(Lznt1Error::Truncated(i))?;
        let end = (chunk_start + CHUNK).min(out.len());
        if header & 0x8000 == 0 {
            // Stored chunk: its bytes as they are.
            let n = len.min(end - chunk_start);
            out[chunk_start..chunk_start + n].copy_from_slice(&data[..n]);
        } else {
            decode_chunk(data, &mut out[chunk_start..end], i + 2)?;
        }
        i += 2 + len;
        chunk_start += CHUNK;
    }
    Ok(())
}

/// Decodes one compressed chunk into `out` (at most 4 KiB). `base` is the chunk's offset in
/// the input, for messages.
fn decode_chunk(data: &[u8], out: &mut [u8], base: usize) -> Result<(), Lznt1Error> {
    let mut i = 0usize;
    let mut pos = 0usize;
    while i < data.len() {
        let flags = data[i];
        i += 1;
        for bit in 0..8 {
            if i >= data.len() {
                return Ok(());
            }
            if flags & (1 << bit) == 0 {
                if pos >= out.len() {
                    return Err(Lznt1Error::Overflow(base + i));
                }
                out[pos] = data[i];
                pos += 1;
                i += 1;
                continue;
            }
            let token = match data.get(i..i + 2) {
                Some(t) => u16::from_le_bytes([t[0], t[1]]),
                None => return Err(Lznt1Error::Truncated(base + i)),
            };
            // The split between offset and length bits moves as the chunk fills: the
            // offset gets just enough bits to reach back to the chunk's start.
            let mut length_mask: u16 = 0x0FFF;
            let mut offset_shift = 12;
            let mut p = pos.saturating_sub(1);
            while p >= 0x10 {
                length_mask >>= 1;
                offset_shift -= 1;
                p >>= 1;
            }
            let length = (token & length_mask) as usize + 3;
            let offset = (token >> offset_shift) as usize + 1;
            if offset > pos {
                return Err(Lznt1Error::BadReference(base + i));
            }
            if pos + length > out.len() {
                return Err(Lznt1Error::Overflow(base + i));
            }
            for k in 0..length {
                out[pos + k] = out[pos + k - offset];
            }
            pos += length;
            i += 2;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compressed chunk written by hand: literals "abc", then a back-reference of
    /// offset 3, length 6 (at position 3: 12 length bits, token (3-1)<<12 | (6-3)).
    #[test]
    fn decodes_literals_and_overlapping_references() {
        let token: u16 = (2 << 12) | 3;
        let body = [
            0b0000_1000,
            b'a',
            b'b',
            b'c',
            token as u8,
            (token >> 8) as u8,
        ];
        let header: u16 = 0xB000 | (body.len() as u16 - 1);
        let mut input = header.to_le_bytes().to_vec();
        input.extend_from_slice(&body);
        input.extend_from_slice(&[0, 0]);
        let mut out = vec![0xEE; 8192];
        decompress(&input, &mut out).unwrap();
        assert_eq!(&out[..9], b"abcabcabc");
        assert!(out[9..].iter().all(|b| *b == 0));
    }

    #[test]
    fn stored_chunks_and_errors() {
        let mut input = (0x3000u16 | 4095).to_le_bytes().to_vec();
        input.extend((0..4096).map(|i| (i % 7) as u8));
        let mut out = vec![0u8; 4096];
        decompress(&input, &mut out).unwrap();
        assert_eq!(out[4095], (4095 % 7) as u8);
        // A reference before the chunk start.
        let bad = [0x02, 0xB0, 0x01, 0x10, 0x00];
        assert!(matches!(
            decompress(&bad, &mut out),
            Err(Lznt1Error::BadReference(_))
        ));
        // A chunk longer than the data.
        assert!(matches!(
            decompress(&[0xFF, 0xBF, 0], &mut out),
            Err(Lznt1Error::Truncated(0))
        ));
    }
}
