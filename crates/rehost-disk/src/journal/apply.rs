//! Acting on an image from its journal: checking that it holds what a commit wrote (or, for
//! an interrupted commit, a mixture of that and what was there before), and writing the
//! saved bytes back.

use super::{units, Generation, PIECE, UNIT};
use crate::sync::{Steps, WriteFile};
use rehost_core::error::Result;

impl Generation {
    /// Checks that `image` holds what this generation's commit left, or (unless `strict`)
    /// any mixture of that and what it overwrote, sector by sector.
    pub(crate) fn check(&self, journal: &WriteFile, image: &WriteFile, strict: bool) -> Result<()> {
        let have = image.len()?;
        let jctx = &journal.ctx;
        let foreign = |what: String| {
            jctx.corrupt(
                self.start,
                format!(
                    "{what}: the image was changed after the commit of generation {}, or this \
                     journal belongs to another image (it was made for {:?}); nothing was \
                     restored",
                    self.number, self.image_name
                ),
            )
        };
        if have != self.new_len && (strict || have != self.orig_len) {
            return Err(foreign(format!(
                "the image is {have} bytes long, the commit left it {} (before: {})",
                self.new_len, self.orig_len
            )));
        }
        let mut crcs = self.units.iter();
        for r in self.ranges.iter().filter(|r| !r.scratch) {
            let mut pos = r.offset;
            while pos < r.offset + r.len {
                // Windows end on sector boundaries, so that they cut no unit.
                let stop = ((pos + PIECE) / UNIT * UNIT).min(r.offset + r.len);
                let n = stop - pos;
                let mut cur = vec![0u8; n as usize];
                let got = image.read_some(pos, &mut cur)? as u64;
                let old = if pos < r.offset + r.saved {
                    let k = (r.offset + r.saved - pos).min(n);
                    journal.exact(r.saved_at + (pos - r.offset), k, "the saved bytes")?
                } else {
                    Vec::new()
                };
                for (s, e) in units(pos, n, self.orig_len) {
                    let want = *crcs.next().unwrap_or(&0);
                    let (a, b) = ((s - pos) as usize, (e - pos) as usize);
                    let bytes = &cur[a..b];
                    let present = e - pos <= got;
                    let is_new = present && crc32c::crc32c(bytes) == want;
                    let is_old = if s < self.orig_len {
                        present && old.get(a..b) == Some(bytes)
                    } else {
                        s - pos >= got || bytes.iter().all(|x| *x == 0)
                    };
                    if !(is_new || !strict && is_old) {
                        return Err(foreign(format!(
                            "the image's bytes at {s:#x} are {} the commit wrote",
                            if strict {
                                "not what"
                            } else {
                                "neither what they were before nor what"
                            }
                        )));
                    }
                }
                pos += n;
            }
        }
        Ok(())
    }

    /// Writes the saved bytes back into `image`, restores its length and flushes it.
    pub(crate) fn restore(
        &self,
        journal: &WriteFile,
        image: &WriteFile,
        steps: &mut Steps,
    ) -> Result<u64> {
        let mut restored = 0;
        for r in &self.ranges {
            let mut done = 0;
            while done < r.saved {
                let n = (r.saved - done).min(PIECE);
                let old = journal.exact(r.saved_at + done, n, "the saved bytes")?;
                image.write(steps, r.offset + done, &old)?;
                done += n;
            }
            restored += r.saved;
        }
        if image.len()? != self.orig_len {
            image.set_len(steps, self.orig_len)?;
        }
        image.sync(steps)?;
        Ok(restored)
    }
}
