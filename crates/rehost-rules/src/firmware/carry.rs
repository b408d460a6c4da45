//! What of the old store still applies after a conversion (BIOS to UEFI, or back): the
//! options of the install's loader entry (its integer, boolean and string elements: `nx`,
//! `detecthal`, `bootmenupolicy`, `loadoptions`, its menu text, ...) where they differ from
//! what bcdboot sets, and the boot manager's `timeout`, copied value for value into the new store.
//! Devices and object references name the old disk and the old store's objects, and the
//! loader's path is the other firmware's (`winload.exe`, `winload.efi`): they are not
//! carried (the new store names the new table's partitions and its firmware's loaders), nor
//! are the old store's other entries, which start other systems from the old partitions.

use crate::subject::Subject;
use rehost_core::error::{Ctx, Result};
use rehost_formats::bcd::{self, Device, Element, Object};
use rehost_formats::bcd_ids::{bootmgr, osloader};
use rehost_regf::apply::{apply, Mapping};
use rehost_regf::base::BaseBlock;
use rehost_regf::edit::Editor;
use rehost_regf::hive::Hive;
use rehost_regf::query;
use rehost_regf::regtext::Op;

/// The store's key in .reg text.
const ROOT: &str = "HKEY_LOCAL_MACHINE\\BCD00000000";
/// The element formats (bits 24 to 27 of an element type) that carry: string, integer,
/// boolean, integer list. Device (1), object (3) and object list (4) elements do not.
const CARRIED_FORMATS: [u32; 4] = [2, 5, 6, 7];
/// The elements of the loader that are not carried though their format is: the
/// application's path (`winload.exe` on BIOS) and the system root the new store sets.
const NOT_CARRIED: [u32; 2] = [0x1200_0002, 0x2200_0002];
/// `timeout` of the boot manager.
const TIMEOUT: u32 = 0x2500_0004;

/// The new store `store` with the old store's options that still apply, and what was
/// carried, in words (empty when nothing was).
pub(super) fn carry(s: &Subject, store: Vec<u8>, ctx: &Ctx) -> Result<(Vec<u8>, Vec<String>)> {
    let Some(old) = old_store(s, ctx) else {
        return Ok((store, Vec::new()));
    };
    let new = bcd::objects(&Hive::parse(store.clone(), ctx.clone())?)?;
    let find = |objs: &[Object], id: &str| objs.iter().find(|o| o.id == id).cloned();
    let (Some(new_manager), Some(old_manager)) =
        (find(&new, bcd::BOOTMGR), find(&old.objects, bcd::BOOTMGR))
    else {
        return Ok((store, Vec::new()));
    };
    let Some(Element::Object(loader_id)) = new_manager.element(bootmgr::DEFAULT_OBJECT).cloned()
    else {
        return Ok((store, Vec::new()));
    };
    let Some(new_loader) = find(&new, &loader_id) else {
        return Ok((store, Vec::new()));
    };
    let mut ops = Vec::new();
    let mut said = Vec::new();
    let mut copy = |from: &Object, to: &str, code: u32, said: &mut Vec<String>| -> Result<()> {
        let path = format!("Objects\\{}\\Elements\\{code:08X}", from.id);
        let Some(k) = query::key(&old.bytes, &path).map_err(|e| ctx.invalid(e.to_string()))? else {
            return Ok(());
        };
        let Some(v) = k
            .values
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case("Element"))
        else {
            return Ok(());
        };
        ops.push(Op::Key(format!(
            "{ROOT}\\Objects\\{to}\\Elements\\{code:08X}"
        )));
        ops.push(Op::Set {
            name: "Element".into(),
            kind: v.kind,
            data: v.data.clone(),
        });
        said.push(format!("{to} {code:08x}"));
        Ok(())
    };
    for (code, value) in &old.loader.elements {
        let format = (code >> 24) & 0xF;
        if CARRIED_FORMATS.contains(&format)
            && !NOT_CARRIED.contains(code)
            && new_loader.element(*code) != Some(value)
        {
            copy(&old.loader, &loader_id, *code, &mut said)?;
        }
    }
    if old_manager.element(TIMEOUT).is_some()
        && old_manager.element(TIMEOUT) != new_manager.element(TIMEOUT)
    {
        copy(&old_manager, bcd::BOOTMGR, TIMEOUT, &mut said)?;
    }
    if ops.is_empty() {
        return Ok((store, said));
    }
    // Stamped with the new store's own time (the install's, not the clock's), so that a
    // dry run and the write make the same bytes.
    let now = BaseBlock::read(&store).map_or(0, |b| b.timestamp);
    let mut ed = Editor::open_at(store, now).map_err(|e| ctx.invalid(e.to_string()))?;
    let map = Mapping {
        roots: vec![ROOT.to_string()],
        control_sets: Vec::new(),
    };
    apply(&mut ed, &ops, &map).map_err(|e| ctx.invalid(e.to_string()))?;
    Ok((ed.save(), said))
}

/// The old store that starts the install.
struct OldStore {
    /// The hive file.
    bytes: Vec<u8>,
    /// Its objects.
    objects: Vec<Object>,
    /// Its loader object for the install.
    loader: Object,
}

/// The old store that starts the install, if the disk has one.
fn old_store(s: &Subject, ctx: &Ctx) -> Option<OldStore> {
    for st in s.image.boot_stores.iter().filter(|b| b.kind == "bcd") {
        let Ok(bytes) = s.scene.read(st.volume, &st.path) else {
            continue;
        };
        let Ok(hive) = Hive::parse(bytes.clone(), ctx.clone()) else {
            continue;
        };
        let Ok(objects) = bcd::objects(&hive) else {
            continue;
        };
        let loader = objects
            .iter()
            .find(|o| match o.element(osloader::OS_DEVICE) {
                Some(Element::Device(Device::Partition { partition })) => {
                    s.scene.resolve(partition) == Some(s.install.volume)
                }
                _ => false,
            });
        if let Some(loader) = loader.cloned() {
            return Some(OldStore {
                bytes,
                objects,
                loader,
            });
        }
    }
    None
}
