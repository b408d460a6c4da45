//! Bounded decompression of one grain (VMDK) or cluster (qcow2): the output never grows past
//! the buffer it is given, whatever the input says.

use rehost_core::error::{Ctx, Result};

/// Decompresses a deflate stream (`zlib`: with the RFC 1950 header and trailer, as VMDK
/// grains; without: raw RFC 1951, as qcow2 clusters) into `out`, which it must fill when
/// `exact` (else the rest of `out` is zeroed). Bytes after the end of the stream are ignored
/// (qcow2 rounds compressed clusters up to sectors).
pub(crate) fn deflate(
    input: &[u8],
    out: &mut [u8],
    zlib: bool,
    exact: bool,
    ctx: &Ctx,
    at: u64,
) -> Result<()> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    let mut flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    if zlib {
        flags |= inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER;
    }
    let mut state = Box::<DecompressorOxide>::default();
    let (status, _, written) = decompress(&mut state, input, out, 0, flags);
    match status {
        TINFLStatus::Done | TINFLStatus::HasMoreOutput if written == out.len() => Ok(()),
        TINFLStatus::Done if !exact => {
            out[written..].fill(0);
            Ok(())
        }
        TINFLStatus::Done => Err(ctx.corrupt(
            at,
            format!(
                "compressed data inflates to {written} bytes where {} were expected",
                out.len()
            ),
        )),
        other => Err(ctx.corrupt(
            at,
            format!("compressed data does not inflate ({other:?} after {written} bytes)"),
        )),
    }
}

/// Decompresses a zstd frame into `out`, which it must fill; stops when `out` is full (qcow2
/// pads compressed clusters to whole sectors).
pub(crate) fn zstd(input: &[u8], out: &mut [u8], ctx: &Ctx, at: u64) -> Result<()> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let bad = |why: String| ctx.corrupt(at, format!("zstd-compressed data: {why}"));
    let mut d = Decoder::new().map_err(|e| bad(e.to_string()))?;
    // A window no larger than the output: a frame that asks for more is not one cluster.
    let log = (usize::BITS - out.len().max(1024).next_power_of_two().leading_zeros() - 1).max(20);
    d.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(log))
        .map_err(|e| bad(e.to_string()))?;
    let mut inb = InBuffer::around(input);
    let len = out.len();
    let mut outb = OutBuffer::around(out);
    loop {
        let before = (inb.pos(), outb.pos());
        let hint = d.run(&mut inb, &mut outb).map_err(|e| bad(e.to_string()))?;
        if outb.pos() == len {
            return Ok(());
        }
        if hint == 0 || inb.pos() == input.len() || before == (inb.pos(), outb.pos()) {
            return Err(bad(format!(
                "the frame ends after {} bytes where {len} were expected",
                outb.pos()
            )));
        }
    }
}
