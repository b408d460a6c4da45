//! Boot configuration: boot.ini (NT 5.x) and BCD stores (Vista and later, BIOS and UEFI),
//! with every device they name resolved to this image's volumes.

use super::report::{describe, BootEntry, BootStore, DeviceRef};
use super::scene::Scene;
use rehost_core::error::{Layer, Result};
use rehost_formats::bcd::{self, Device, Element, Object};
use rehost_formats::{bootini, hive::Hive};

/// Where boot stores live on a volume.
pub const STORE_PATHS: [(&str, &str); 3] = [
    ("boot.ini", "boot.ini"),
    ("bcd", "Boot/BCD"),
    ("bcd", "EFI/Microsoft/Boot/BCD"),
];

/// OS loader object type.
const OSLOADER: u32 = 0x1020_0003;
/// The resume loader's object type (winresume).
const RESUME: u32 = 0x1020_0004;
/// Elements: library ApplicationDevice, ApplicationPath, Description; OS loader OSDevice,
/// SystemRoot, DetectKernelAndHal, KernelPath, HalPath; boot manager DefaultObject.
const APPLICATION_DEVICE: u32 = 0x1100_0001;
const APPLICATION_PATH: u32 = 0x1200_0002;
const DESCRIPTION: u32 = 0x1200_0004;
const OS_DEVICE: u32 = 0x2100_0001;
const SYSTEM_ROOT: u32 = 0x2200_0002;
const DETECT_HAL: u32 = 0x2600_0010;
const KERNEL_PATH: u32 = 0x2200_0011;
const HAL_PATH: u32 = 0x2200_0012;
const DEFAULT_OBJECT: u32 = 0x2300_0003;

/// Finds and reads every boot store on every volume. Unreadable stores become errors.
pub fn stores(scene: &Scene, errors: &mut Vec<String>) -> Vec<BootStore> {
    let mut out = Vec::new();
    for v in &scene.layout.volumes {
        for (kind, path) in STORE_PATHS {
            if !scene.is_file(v.index, path) {
                continue;
            }
            let read = scene.read(v.index, path).and_then(|bytes| match kind {
                "boot.ini" => Ok(from_boot_ini(scene, v.index, path, &bytes)),
                _ => from_bcd(scene, v.index, path, bytes),
            });
            match read {
                Ok(s) => out.push(s),
                Err(e) => errors.push(format!("{path} on volume {}: {e}", v.index)),
            }
        }
    }
    out
}

fn from_boot_ini(scene: &Scene, volume: u32, path: &str, bytes: &[u8]) -> BootStore {
    let ini = bootini::parse(bytes);
    // ntldr starts the first line whose path `default=` names: several lines may have
    // that path (an entry added with other switches, the old one kept), and only the
    // first is the default.
    let default = ini.default_index();
    let entries = ini
        .entries
        .iter()
        .enumerate()
        .filter_map(|(at, e)| {
            let arc = e.arc.as_ref()?;
            // rdisk(0) is the disk the BIOS boots, this one; a signature() path names it
            // by its MBR signature.
            let here = match &arc.signature {
                Some(sig) => scene
                    .layout
                    .mbr_signature
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(sig)),
                None => arc.rdisk == 0,
            };
            let volume = here.then(|| scene.arc_partition(arc.partition)).flatten();
            Some(BootEntry {
                id: e.target.clone(),
                description: e.description.clone(),
                default: default == Some(at),
                device: None,
                os_device: Some(DeviceRef {
                    device: format!("rdisk({}) partition({})", arc.rdisk, arc.partition),
                    volume,
                    on_volume: volume,
                }),
                path: None,
                system_root: Some(arc.path.clone()),
                hal: e.hal.clone(),
                kernel: e.kernel.clone(),
                detect_hal: None,
                switches: e.switches.clone(),
            })
        })
        .collect();
    BootStore {
        kind: "boot.ini".into(),
        volume,
        path: path.into(),
        bootmgr_device: None,
        entries,
        resume: Vec::new(),
    }
}

fn device_ref(scene: &Scene, store_volume: u32, e: Option<&Element>) -> Option<DeviceRef> {
    let Some(Element::Device(d)) = e else {
        return None;
    };
    Some(match d {
        Device::Boot => DeviceRef {
            device: "boot".into(),
            volume: Some(store_volume),
            on_volume: Some(store_volume),
        },
        Device::Partition { partition } => DeviceRef {
            device: describe(partition),
            volume: scene.resolve(partition),
            on_volume: scene.resolve(partition),
        },
        Device::Ramdisk { partition, path } => DeviceRef {
            device: format!(
                "ramdisk {path} on {}",
                partition
                    .as_ref()
                    .map(describe)
                    .unwrap_or_else(|| "the boot device".into())
            ),
            volume: None,
            on_volume: match partition {
                Some(p) => scene.resolve(p),
                None => Some(store_volume),
            },
        },
        Device::Other { device_type } => DeviceRef {
            device: format!("device type {device_type}"),
            volume: None,
            on_volume: None,
        },
    })
}

fn string(o: &Object, code: u32) -> Option<String> {
    match o.element(code) {
        Some(Element::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn from_bcd(scene: &Scene, volume: u32, path: &str, bytes: Vec<u8>) -> Result<BootStore> {
    let ctx = scene.ctx.with_layer(Layer::Bcd);
    let hive = Hive::parse(bytes, ctx.clone())
        .map_err(|e| ctx.corrupt_at_path(path, e.kind.to_string()))?;
    let objects = bcd::objects(&hive)?;
    let bootmgr = objects.iter().find(|o| o.id == bcd::BOOTMGR);
    let default = bootmgr.and_then(|b| match b.element(DEFAULT_OBJECT) {
        Some(Element::Object(g)) => Some(g.clone()),
        _ => None,
    });
    let entry = |o: &bcd::Object| BootEntry {
        id: o.id.clone(),
        description: string(o, DESCRIPTION).unwrap_or_default(),
        default: default.as_deref() == Some(o.id.as_str()),
        device: device_ref(scene, volume, o.element(APPLICATION_DEVICE)),
        os_device: device_ref(scene, volume, o.element(OS_DEVICE)),
        path: string(o, APPLICATION_PATH),
        system_root: string(o, SYSTEM_ROOT),
        hal: string(o, HAL_PATH),
        kernel: string(o, KERNEL_PATH),
        detect_hal: match o.element(DETECT_HAL) {
            Some(Element::Boolean(b)) => Some(*b),
            _ => None,
        },
        switches: Vec::new(),
    };
    let entries = objects
        .iter()
        .filter(|o| o.kind == OSLOADER)
        .map(entry)
        .collect();
    let resume = objects
        .iter()
        .filter(|o| o.kind == RESUME)
        .map(entry)
        .collect();
    Ok(BootStore {
        kind: "bcd".into(),
        volume,
        path: path.into(),
        bootmgr_device: bootmgr
            .and_then(|b| device_ref(scene, volume, b.element(APPLICATION_DEVICE))),
        entries,
        resume,
    })
}
