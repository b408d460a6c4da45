//! What the sparse formats read once and use many times: their lookup tables (VMDK grain
//! tables, qcow2 L2 tables) and their last decompressed grains or clusters, each kept in a
//! cache of bounded size.

use rehost_core::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Lookup tables by their offset in the host file, up to a number of entries in all; when
/// full, it starts again empty (the tables of a hostile image cannot grow it further, and a
/// real disk's working set is far smaller).
pub(crate) struct TableCache {
    map: Mutex<HashMap<u64, Arc<[u64]>>>,
    held: Mutex<usize>,
    max_entries: usize,
}

impl TableCache {
    /// A cache holding at most `max_entries` table entries.
    pub fn new(max_entries: usize) -> Self {
        TableCache {
            map: Mutex::new(HashMap::new()),
            held: Mutex::new(0),
            max_entries,
        }
    }

    /// The table at `offset`, read by `load` the first time.
    pub fn get(&self, offset: u64, load: impl FnOnce() -> Result<Vec<u64>>) -> Result<Arc<[u64]>> {
        if let Some(t) = lock(&self.map).get(&offset) {
            return Ok(t.clone());
        }
        let table: Arc<[u64]> = load()?.into();
        let mut map = lock(&self.map);
        let mut held = lock(&self.held);
        if *held + table.len() > self.max_entries {
            map.clear();
            *held = 0;
        }
        *held += table.len();
        map.insert(offset, table.clone());
        Ok(table)
    }
}

/// The last few decompressed units (grains, clusters) by their offset in the host file: a
/// reader above asks for a unit in 4 KiB blocks, and each must not inflate it again.
pub(crate) struct UnitCache {
    slots: Mutex<(usize, Vec<Unit>)>,
}

/// A decompressed unit and its offset in the host file.
type Unit = (u64, Arc<[u8]>);

/// Decompressed units kept.
const UNITS: usize = 8;

impl UnitCache {
    /// An empty cache.
    pub fn new() -> Self {
        UnitCache {
            slots: Mutex::new((0, Vec::new())),
        }
    }

    /// The unit at `offset`, decompressed by `load` when it is not kept.
    pub fn get(&self, offset: u64, load: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<[u8]>> {
        if let Some((_, u)) = lock(&self.slots).1.iter().find(|(o, _)| *o == offset) {
            return Ok(u.clone());
        }
        let unit: Arc<[u8]> = load()?.into();
        let mut s = lock(&self.slots);
        let (hand, slots) = &mut *s;
        if slots.len() < UNITS {
            slots.push((offset, unit.clone()));
        } else {
            slots[*hand] = (offset, unit.clone());
            *hand = (*hand + 1) % UNITS;
        }
        Ok(unit)
    }
}

/// A poisoned lock still holds a consistent cache (every update is one assignment).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
