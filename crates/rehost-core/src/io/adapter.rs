//! `Read + Seek` over a [`ReadAt`], for crates that want a cursor (gpt, mbrman, fatfs), and
//! `Read + Write + Seek` over a [`WriteAt`] (fatfs writing into a staged volume).

use super::{ReadAt, WriteAt};
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A cursor over a positional reader. Writes fail: the layers below are read-only until
/// a change is committed through the staging overlay.
#[derive(Debug)]
pub struct Cursor<R> {
    inner: R,
    pos: u64,
}

impl<R: ReadAt> Cursor<R> {
    /// A cursor at position 0.
    pub fn new(inner: R) -> Self {
        Cursor { inner, pos: 0 }
    }
}

/// Reads from `inner` at `*pos` as much of `buf` as the device holds, and moves `*pos`.
fn read_from(inner: &dyn ReadAt, pos: &mut u64, buf: &mut [u8]) -> io::Result<usize> {
    let size = inner.size();
    if *pos >= size {
        return Ok(0);
    }
    let n = (size - *pos).min(buf.len() as u64) as usize;
    inner
        .read_at(*pos, &mut buf[..n])
        .map_err(io::Error::other)?;
    *pos += n as u64;
    Ok(n)
}

/// The position a seek from `pos` on a device of `size` bytes goes to.
fn seek_in(size: u64, pos: &mut u64, to: SeekFrom) -> io::Result<u64> {
    let base = match to {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::End(d) => size.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    match base {
        Some(p) => {
            *pos = p;
            Ok(p)
        }
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek before the start of the device",
        )),
    }
}

impl<R: ReadAt> Read for Cursor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_from(&self.inner, &mut self.pos, buf)
    }
}

impl<R: ReadAt> Seek for Cursor<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        seek_in(self.inner.size(), &mut self.pos, to)
    }
}

impl<R: ReadAt> Write for Cursor<R> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "this device is opened read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A cursor over a positional writer (a window of the staging overlay): writes land
/// there, never past the end of the device.
#[derive(Debug)]
pub struct CursorMut<W> {
    inner: W,
    pos: u64,
}

impl<W: WriteAt> CursorMut<W> {
    /// A cursor at position 0.
    pub fn new(inner: W) -> Self {
        CursorMut { inner, pos: 0 }
    }
}

impl<W: WriteAt> Read for CursorMut<W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_from(&self.inner, &mut self.pos, buf)
    }
}

impl<W: WriteAt> Seek for CursorMut<W> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        seek_in(self.inner.size(), &mut self.pos, to)
    }
}

impl<W: WriteAt> Write for CursorMut<W> {
    /// Writes what fits before the end of the device (0 bytes at the end, which makes
    /// `write_all` fail rather than write past it).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let size = self.inner.size();
        if self.pos >= size {
            return Ok(0);
        }
        let n = (size - self.pos).min(buf.len() as u64) as usize;
        self.inner
            .write_at(self.pos, &buf[..n])
            .map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
