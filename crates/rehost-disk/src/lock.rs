//! The advisory lock that keeps two writers off one image.
//!
//! A writer in place holds an exclusive `flock` on the image file from the moment it opens
//! it (before an interrupted commit is rolled back) until it is done; a writer of a new
//! image holds a shared lock on its source, so that many new images can be made from one
//! source at once while no one writes the source in place. `rehost undo` takes the
//! exclusive lock. Readers (`inspect`, `ls`, `cat`) take no lock at all: they never write,
//! and a forensic examiner's image is not touched even by a lock.
//!
//! The lock is advisory: it keeps rehost processes apart, not other programs.
//!
//! A lock is released by an explicit unlock when it is dropped, not by closing its file
//! alone: a `flock` belongs to the open file description, and a process spawned by another
//! thread at that moment holds a copy of every descriptor until it executes its program,
//! so closing ours would leave the lock held for that while, and a writer taking it next
//! (an `undo` right after a commit) would find the image locked by no one it could see.

use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::path::Path;

/// A held lock on an image file; released when dropped.
pub struct ImageLock {
    file: File,
    exclusive: bool,
    ctx: Ctx,
}

impl ImageLock {
    /// Takes the exclusive lock on `path`, or fails at once if another process holds any
    /// lock on it.
    pub fn exclusive(path: &Path) -> Result<Self> {
        Self::take(path, true)
    }

    /// Takes a shared lock on `path`, or fails at once if a writer holds it.
    pub fn shared(path: &Path) -> Result<Self> {
        Self::take(path, false)
    }

    fn take(path: &Path, exclusive: bool) -> Result<Self> {
        let ctx = Ctx::new(path.display().to_string(), Layer::File);
        let file = File::open(path).map_err(|e| ctx.error(Location::None, e.into()))?;
        let mut lock = ImageLock {
            file,
            exclusive: !exclusive,
            ctx,
        };
        lock.set(exclusive)?;
        Ok(lock)
    }

    /// Whether this lock is exclusive.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Turns the lock exclusive (fails if others hold it too) or shared.
    pub fn set(&mut self, exclusive: bool) -> Result<()> {
        if exclusive == self.exclusive {
            return Ok(());
        }
        let op = if exclusive {
            FlockOperation::NonBlockingLockExclusive
        } else {
            FlockOperation::NonBlockingLockShared
        };
        match flock(&self.file, op) {
            Ok(()) => {
                self.exclusive = exclusive;
                Ok(())
            }
            Err(rustix::io::Errno::WOULDBLOCK) => Err(self.ctx.error(
                Location::None,
                ErrorKind::Invalid(format!(
                    "the image is locked by another rehost process {}; wait for it to \
                     finish",
                    if exclusive {
                        "(reading or writing it)"
                    } else {
                        "writing it"
                    }
                )),
            )),
            Err(e) => Err(self.ctx.error(Location::None, ErrorKind::Io(e.into()))),
        }
    }
}

impl Drop for ImageLock {
    fn drop(&mut self) {
        // Unlocks the open file description, whoever else holds a copy of it (see above).
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

impl std::fmt::Debug for ImageLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLock")
            .field("image", &self.ctx.image)
            .field("exclusive", &self.exclusive)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_exclude_each_other_and_readers_share() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        std::fs::write(&p, [0u8; 512]).unwrap();
        let a = ImageLock::exclusive(&p).unwrap();
        let e = ImageLock::exclusive(&p).unwrap_err();
        assert!(
            e.to_string().contains("locked by another rehost process"),
            "{e}"
        );
        assert!(ImageLock::shared(&p).is_err());
        drop(a);
        let s1 = ImageLock::shared(&p).unwrap();
        let mut s2 = ImageLock::shared(&p).unwrap();
        assert!(ImageLock::exclusive(&p).is_err());
        assert!(
            s2.set(true).is_err(),
            "another shared holder blocks the upgrade"
        );
        drop(s1);
        s2.set(true).unwrap();
        assert!(s2.is_exclusive());
        assert!(ImageLock::shared(&p).is_err());
    }

    #[test]
    fn a_dropped_lock_is_free_while_a_spawned_process_still_holds_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        std::fs::write(&p, [0u8; 512]).unwrap();
        for exclusive in [true, false] {
            let lock = ImageLock::take(&p, exclusive).unwrap();
            // What a process forked by another thread holds until it runs its program: a
            // copy of the descriptor, on the same open file description.
            let inherited = lock.file.try_clone().unwrap();
            drop(lock);
            let next = ImageLock::exclusive(&p);
            assert!(next.is_ok(), "{:?}", next.err());
            drop(inherited);
        }
    }
}
