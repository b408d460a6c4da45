//! The hives of one image opened for editing: each hive read once from the image session
//! (its logs replayed once), edited as many times as asked, each edit applied to what the
//! last one left and read back through nt-hive, and every edited hive staged over its file
//! by the writer of its volume at the end. `fix` and `reg set` both edit through it.

use crate::registry::{self, Edited, HiveFile, Mount};
use crate::Opened;
use rehost_core::error::{Ctx, Layer, Result};
use rehost_image::staged::Writers;
use rehost_regf::diff::Change;
use rehost_regf::regtext::Op;

/// One hive being edited, and where it came from.
struct Open {
    /// The hive's file name (`SYSTEM`, `BCD`), as asked for.
    name: String,
    /// The volume asked for (`None`: the install's own or the only one).
    volume: Option<u32>,
    /// The hive as the last edit left it.
    hive: HiveFile,
    /// Changes made by the edits so far.
    changes: usize,
    /// Why its logs could not be replayed, when it is edited as its primary file stands.
    as_it_stands: Option<String>,
}

/// The hives of an image being edited.
#[derive(Default)]
pub struct HiveEdits {
    open: Vec<Open>,
    accept_dirty: bool,
}

/// What staging wrote: for each changed hive, its source, volume and file.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The hive, as messages name it.
    pub source: String,
    /// The volume it was written into.
    pub volume: u32,
    /// Its file on that volume.
    pub path: String,
    /// Its new size in bytes.
    pub bytes: usize,
    /// The changes the edits made to it.
    pub changes: usize,
}

impl HiveEdits {
    /// No hive open yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a dirty hive whose logs cannot be replayed is edited as its primary file
    /// stands (and written back consistent) instead of refused.
    pub fn accepting_dirty(mut self, yes: bool) -> Self {
        self.accept_dirty = yes;
        self
    }

    /// Why the logs of the hive `m` on `volume` could not be replayed, when it is being
    /// edited as its primary file stands.
    pub fn as_it_stands(&self, volume: Option<u32>, m: &Mount) -> Option<&str> {
        self.open
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&m.file) && o.volume == volume)
            .and_then(|o| o.as_it_stands.as_deref())
    }

    /// Where the hive `m` on `volume` stands in `open`, read from `opened` the first time.
    fn at(&mut self, opened: &Opened, volume: Option<u32>, m: &Mount) -> Result<usize> {
        let found = self
            .open
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&m.file) && o.volume == volume);
        if let Some(at) = found {
            return Ok(at);
        }
        let mut hive = registry::open_in_image(opened, volume, m)?;
        let as_it_stands = if self.accept_dirty {
            hive.unreplayable.take()
        } else {
            None
        };
        if as_it_stands.is_some() {
            rehost_regf::base::mark_consistent(&mut hive.bytes);
        }
        self.open.push(Open {
            name: m.file.clone(),
            volume,
            hive,
            changes: 0,
            as_it_stands,
        });
        Ok(self.open.len() - 1)
    }

    /// The hive `m` on `volume` (`None`: the install's own), read from `opened` the first
    /// time and kept as edited since.
    pub fn hive(&mut self, opened: &Opened, volume: Option<u32>, m: &Mount) -> Result<&HiveFile> {
        let at = self.at(opened, volume, m)?;
        Ok(&self.open[at].hive)
    }

    /// Applies `ops` to the hive `m` on `volume` as the last edit left it (read back through
    /// nt-hive, refused on a dirty hive whose logs cannot be replayed); the hive keeps the
    /// result, and the changes are returned. `prefix` and `all_control_sets` say how key
    /// names map into the hive.
    pub fn edit(
        &mut self,
        opened: &Opened,
        volume: Option<u32>,
        m: &Mount,
        ops: &[Op],
        prefix: Option<&str>,
        all_control_sets: bool,
    ) -> Result<Vec<Change>> {
        let at = self.at(opened, volume, m)?;
        let o = &mut self.open[at];
        let map = o.hive.mapping(prefix, all_control_sets)?;
        let Edited { bytes, changes } = registry::edit(&o.hive, ops, &map)?;
        if !changes.is_empty() {
            o.hive = o.hive.with_bytes(bytes);
            o.changes += changes.len();
        }
        Ok(changes)
    }

    /// Stages every hive an edit changed over its file, through the writer of its volume.
    pub fn stage(self, writers: &mut Writers) -> Result<Vec<Staged>> {
        let mut out = Vec::new();
        for o in self.open.into_iter().filter(|o| o.changes > 0) {
            let Some((volume, path)) = &o.hive.location else {
                return Err(Ctx::new(o.hive.source.clone(), Layer::Hive)
                    .invalid(format!("the {} hive has no place in the image", o.name)));
            };
            writers.get(*volume)?.replace(path, &o.hive.bytes)?;
            out.push(Staged {
                source: o.hive.source.clone(),
                volume: *volume,
                path: path.clone(),
                bytes: o.hive.bytes.len(),
                changes: o.changes,
            });
        }
        Ok(out)
    }
}
