//! The boot files rebuilt, as bcdboot rebuilds them, when the partition the firmware
//! starts holds none (a System Reserved partition lost in a restore): the boot manager and
//! the files beside it, copied from the install's own `\Windows\Boot` (which files, from
//! where to where: `profiles/boot.toml`, `boot_files`), and a new store for the install
//! ([`rehost_formats::bcdboot`]): the boot manager, the OS loader with its devices naming
//! this disk's partitions, the resume loader, the settings objects, and the memory tester
//! where the install has one.

use super::boot_files::rows;
use super::ID;
use crate::cannot::NoBootFiles;
use crate::fix::{Change, Plan};
use crate::subject::Subject;
use rehost_core::error::{Layer, Result};
use rehost_formats::bcd::{self, PartitionRef};
use rehost_formats::bcd_ids::{bootmgr, osloader};
use rehost_formats::bcdboot::{self, Firmware, Install};
use rehost_regf::hive::Hive;
use sha2::{Digest, Sha256};

/// Most files the rebuild copies.
const MAX_FILES: usize = 512;
/// Most bytes it copies.
const MAX_BYTES: u64 = 64 << 20;
/// The locale of the boot menus when the install's `\Windows\Boot` holds that locale's
/// folder (bcdboot's default, `/l en-US`); else the first locale folder found.
const DEFAULT_LOCALE: &str = "en-US";

fn firmware_name(f: Firmware) -> &'static str {
    match f {
        Firmware::Bios => "bios",
        Firmware::Uefi => "uefi",
    }
}

/// Whether a folder's name is a locale's (`en-US`, `zh-TW`, `sr-Latn-RS`).
fn is_locale(name: &str) -> bool {
    let mut parts = name.split('-');
    let lang = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| (2..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// What the rebuild copies: (path on the system partition, bytes, source path).
struct Copies {
    files: Vec<(String, Vec<u8>, String)>,
    bytes: u64,
}

impl Copies {
    /// Reads `from` on the install's volume to copy as `to`, its size weighed against the
    /// limits before it is read.
    fn add(&mut self, s: &Subject, from: String, to: String) -> Result<Option<NoBootFiles>> {
        let size = s.scene.stat(s.install.volume, &from).map_or(0, |e| e.size);
        self.bytes = self.bytes.saturating_add(size);
        if self.files.len() >= MAX_FILES || self.bytes > MAX_BYTES {
            return Ok(Some(NoBootFiles::TooMuch {
                path: format!("\\{}", from.replace('/', "\\")),
                limit: format!("at most {MAX_FILES} files, {} MiB", MAX_BYTES >> 20),
            }));
        }
        let bytes = s.scene.read(s.install.volume, &from)?;
        self.files.push((to, bytes, from));
        Ok(None)
    }
}

/// A GUID for the new store's objects that the same install on the same disk always gets
/// (bcdboot makes random ones): so a dry run and the write name the same objects.
fn derived_guid(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// The new store's timestamp: the last-written time of the install's SYSTEM hive, not the
/// clock (bcdboot's), so that a dry run and the write make the same bytes.
fn stamp(s: &Subject) -> u64 {
    rehost_regf::base::BaseBlock::read(s.system.bytes())
        .map(|b| b.timestamp)
        .unwrap_or(0)
}

/// The install's `\Windows\Boot` folder on its volume.
fn source_dir(s: &Subject) -> String {
    format!(
        "{}/Boot",
        s.install
            .system_root
            .trim_matches(['\\', '/'])
            .replace('\\', "/")
    )
}

/// The boot files of one firmware as bcdboot makes them for an install: the files copied
/// from its `\Windows\Boot` (path on the system partition, bytes, source path), and the new
/// store (its path there, its bytes), read back.
pub struct Rebuilt {
    /// (path on the system partition, bytes, source path on the install's volume).
    pub files: Vec<(String, Vec<u8>, String)>,
    /// The store's path on the system partition (`\Boot\BCD`, `\EFI\Microsoft\Boot\BCD`).
    pub store_path: &'static str,
    /// The store.
    pub store: Vec<u8>,
    /// What the store holds, in words (for the plan's reason).
    pub what: String,
}

/// Plans the boot files of `firmware` rebuilt on volume `system` for the install of `s`,
/// or says why not. `why` says which finding it repairs.
pub fn rebuild(
    s: &Subject,
    system: u32,
    firmware: Firmware,
    why: &str,
    plan: &mut Plan,
) -> Result<()> {
    let i = s.install;
    if s.nt5() {
        return super::rebuild_nt5::rebuild(s, system, why, plan);
    }
    let (Some(sys_id), Some(os_id)) = (s.scene.identity(system), s.scene.identity(i.volume)) else {
        let volume = if s.scene.identity(system).is_none() {
            system
        } else {
            i.volume
        };
        plan.cannot(ID, NoBootFiles::NoIdentity { volume }.to_string());
        return Ok(());
    };
    let r = match files(s, firmware, sys_id, os_id)? {
        Ok(r) => r,
        Err(no) => {
            plan.cannot(ID, no.to_string());
            return Ok(());
        }
    };
    let win = |p: &str| format!("\\{}", p.replace('/', "\\"));
    for (to, bytes, from) in r.files {
        plan.add(
            ID,
            format!("{} from {}. Repairs {why}", win(&to), win(&from)),
            Change::Put {
                volume: system,
                path: win(&to),
                bytes,
            },
        );
    }
    plan.add(
        ID,
        format!("{}. Repairs {why}", r.what),
        Change::Put {
            volume: system,
            path: r.store_path.to_string(),
            bytes: r.store,
        },
    );
    Ok(())
}

/// The boot files of `firmware` for the install of `s` (not NT 5.x), its store naming
/// `system` as the system partition and `os` as the install's: what bcdboot would write,
/// read from the install's own `\Windows\Boot`; or why not.
pub fn files(
    s: &Subject,
    firmware: Firmware,
    system: PartitionRef,
    os: PartitionRef,
) -> Result<std::result::Result<Rebuilt, NoBootFiles>> {
    let i = s.install;
    let base = source_dir(s);
    let fs = s.scene.fs(i.volume);
    let list = |dir: &str| -> Vec<rehost_image::DirEntry> {
        fs.and_then(|f| f.read_dir(dir).ok()).unwrap_or_default()
    };
    let mut copies = Copies {
        files: Vec::new(),
        bytes: 0,
    };
    let mut memory_tester = false;
    let mut locales: Vec<String> = Vec::new();
    let name = firmware_name(firmware);
    for row in rows().iter().filter(|r| r.firmware == name) {
        let from = format!("{base}/{}", row.from);
        let mut found: Vec<(String, String)> = Vec::new();
        if row.dir || row.locales {
            for e in list(&from) {
                if row.dir && !e.is_dir {
                    found.push((
                        format!("{from}/{}", e.name),
                        format!("{}/{}", row.to, e.name),
                    ));
                }
                if row.locales && e.is_dir && is_locale(&e.name) {
                    if !locales.contains(&e.name) {
                        locales.push(e.name.clone());
                    }
                    let sub = format!("{from}/{}", e.name);
                    for f in list(&sub).into_iter().filter(|f| !f.is_dir) {
                        found.push((
                            format!("{sub}/{}", f.name),
                            format!("{}/{}/{}", row.to, e.name, f.name),
                        ));
                    }
                }
            }
        } else if s.scene.is_file(i.volume, &from) {
            found.push((from.clone(), row.to.clone()));
        } else if row.required {
            return Ok(Err(NoBootFiles::Missing {
                volume: i.volume,
                path: format!("\\{}", from.replace('/', "\\")),
            }));
        }
        memory_tester |= row.memory_tester && !found.is_empty();
        for (src, to) in found {
            if let Some(no) = copies.add(s, src, to)? {
                return Ok(Err(no));
            }
        }
    }
    let locale = if locales.iter().any(|l| l == DEFAULT_LOCALE) || locales.is_empty() {
        DEFAULT_LOCALE.to_string()
    } else {
        locales[0].clone()
    };
    let seed = format!("{os:?}|{}", i.system_root.to_ascii_lowercase());
    let install = Install {
        firmware,
        system,
        os: os.clone(),
        system_root: i.system_root.clone(),
        description: i
            .product_name
            .clone()
            .unwrap_or_else(|| "Windows".to_string()),
        locale,
        loader: derived_guid(&format!("{seed}|loader")),
        resume: derived_guid(&format!("{seed}|resume")),
    };
    let ctx = s.scene.ctx.with_layer(Layer::Bcd);
    let store = bcdboot::store_with(&install, memory_tester, stamp(s), &ctx)?;
    // Read back through the store reader before it is planned: the boot manager's default
    // is the loader, whose OS device is the install's partition.
    let objects = bcd::objects(&Hive::parse(store.clone(), ctx.clone())?)?;
    let object = |id: &str| objects.iter().find(|o| o.id == id);
    let default = object(bcd::BOOTMGR).and_then(|m| match m.element(bootmgr::DEFAULT_OBJECT) {
        Some(bcd::Element::Object(id)) => Some(id.clone()),
        _ => None,
    });
    let os_device = object(&install.loader).and_then(|l| match l.element(osloader::OS_DEVICE) {
        Some(bcd::Element::Device(bcd::Device::Partition { partition })) => Some(partition.clone()),
        _ => None,
    });
    if default.as_deref() != Some(install.loader.as_str()) || os_device.as_ref() != Some(&os) {
        return Err(ctx.invalid(format!(
            "the new store read back does not start the install from volume {}",
            i.volume
        )));
    }
    let store_path = firmware.store_path();
    let what = format!(
        "{} written new for {} (boot manager, OS loader {} with winload.{}, resume \
         loader, settings{}), as bcdboot makes it",
        store_path,
        install.description,
        install.loader,
        firmware.extension(),
        if memory_tester { ", memory tester" } else { "" }
    );
    Ok(Ok(Rebuilt {
        files: copies.files,
        store_path,
        store,
        what,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_files_table_parses_and_each_firmware_has_a_required_file() {
        for f in ["bios", "uefi"] {
            assert!(rows().iter().any(|r| r.firmware == f && r.required), "{f}");
        }
    }

    #[test]
    fn locales_and_guids() {
        for l in ["en-US", "zh-TW", "sr-Latn-RS", "qps-ploc"] {
            assert!(is_locale(l), "{l}");
        }
        for l in ["Fonts", "en", "EN-us", "", "-US"] {
            assert!(!is_locale(l), "{l}");
        }
        let g = derived_guid("x");
        assert_eq!(g, derived_guid("x"));
        assert_ne!(g, derived_guid("y"));
        assert_eq!(g.len(), 38);
        assert_eq!(&g[15..16], "4");
    }
}
