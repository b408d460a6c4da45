//! Writing a BCD store from nothing: a new hive (rehost-regf's `NewHive`) laid out as
//! Windows lays out its stores, holding the objects given.
//!
//! The layout is that of the real stores under `testdata/hives` (one written by Windows 10,
//! one from Windows install media), read with hivexregedit and [`super::bcd::objects`]: the
//! root key `NewStoreRoot` (the name `bcdedit /createstore` and bcdboot give it; Windows
//! mounts the store as `HKLM\BCD00000000`), `Description` with `KeyName` = `BCD00000000`,
//! `System` = 1 and `TreatAsSystem` = 1 (REG_DWORD), and `Objects\{id}\Description\Type`
//! (REG_DWORD) and `Objects\{id}\Elements\<code, 8 lower-case hex digits>\Element`. Element
//! values are written as Windows writes them, by format: devices, integers (8 bytes),
//! booleans (1 byte) and integer lists as REG_BINARY, strings and objects as REG_SZ, object
//! lists as REG_MULTI_SZ. The hive is version 1.3, its keys sharing one security descriptor:
//! Administrators may read it and change its access, Local System has full control, as in
//! Windows' stores.

use super::bcd::{Device, Element, Object, PartitionRef};
use super::bcd_ids::format;
use rehost_core::error::Result;
use rehost_core::Ctx;
use rehost_regf::security::{self, Ace};
use rehost_regf::{Editor, NewHive};

/// The root key's name in the stores Windows creates.
pub const ROOT_NAME: &str = "NewStoreRoot";
/// `Description\KeyName` of a system store.
pub const KEY_NAME: &str = "BCD00000000";
/// The hive version Windows writes its stores in (1.3).
pub const MINOR: u32 = 3;
/// A device element's length: a 16-byte options GUID, then a 0x48-byte descriptor.
pub const DEVICE_LEN: usize = 0x58;

const REG_SZ: u32 = 1;
const REG_BINARY: u32 = 3;
const REG_DWORD: u32 = 4;
const REG_MULTI_SZ: u32 = 7;

/// The store file itself: where it will lie and when it is written.
#[derive(Debug, Clone)]
pub struct StoreFile {
    /// Its path on its volume (`\EFI\Microsoft\Boot\BCD`, `\Boot\BCD`), kept in the base
    /// block's file name field.
    pub path: String,
    /// The time written into the hive (a FILETIME).
    pub timestamp: u64,
}

/// The security descriptor of Windows' own stores, in SDDL
/// `O:BAG:SYD:(A;;KRWD;;;BA)(A;;KA;;;SY)`.
pub fn store_descriptor() -> Vec<u8> {
    security::descriptor(
        &security::administrators(),
        &security::local_system(),
        &[
            Ace::allow(
                0,
                security::KEY_READ | security::WRITE_DAC,
                security::administrators(),
            ),
            Ace::allow(0, security::KEY_ALL_ACCESS, security::local_system()),
        ],
        0,
    )
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// An object identifier as stores write it: `{guid}`, lower case; `None` when `id` is no
/// GUID (with or without braces).
pub fn identifier(id: &str) -> Option<String> {
    let inner = id.trim().trim_start_matches('{').trim_end_matches('}');
    let u = uuid::Uuid::parse_str(inner).ok()?;
    Some(format!("{{{}}}", u.hyphenated()))
}

/// The device element naming `device`: the boot device, or a partition (MBR signature and
/// offset, or GPT disk and partition GUIDs) through [`super::bcd::set_partition`]. `None`
/// for a device this writer does not make (RAM disks, other kinds) or an identity that does
/// not parse.
pub fn device_bytes(device: &Device) -> Option<Vec<u8>> {
    let mut b = vec![0u8; DEVICE_LEN];
    b[0x18] = 0x48;
    match device {
        Device::Boot => {
            b[0x10] = 5;
            Some(b)
        }
        Device::Partition { partition } => {
            b[0x10] = 6;
            super::bcd::set_partition(&mut b, 0x10, partition)?;
            Some(b)
        }
        _ => None,
    }
}

/// A partition device element.
pub fn partition(r: &PartitionRef) -> Element {
    Element::Device(Device::Partition {
        partition: r.clone(),
    })
}

/// The registry type and data of an element, as Windows writes it; `None` when the value
/// is not of the format the element type's code gives (a `Raw` value is written as it is,
/// as REG_BINARY, whatever the code).
pub fn encode(code: u32, e: &Element) -> Option<(u32, Vec<u8>)> {
    let f = format(code);
    Some(match e {
        Element::Device(d) if f == 1 => (REG_BINARY, device_bytes(d)?),
        Element::String(s) if f == 2 => (REG_SZ, utf16z(s)),
        Element::Object(o) if f == 3 => (REG_SZ, utf16z(&identifier(o)?)),
        Element::ObjectList(l) if f == 4 => {
            let mut b = Vec::new();
            for o in l {
                b.extend(utf16z(&identifier(o)?));
            }
            b.extend([0, 0]);
            (REG_MULTI_SZ, b)
        }
        Element::Integer(n) if f == 5 => (REG_BINARY, n.to_le_bytes().to_vec()),
        Element::Boolean(v) if f == 6 => (REG_BINARY, vec![u8::from(*v)]),
        Element::IntegerList(l) if f == 7 => {
            (REG_BINARY, l.iter().flat_map(|n| n.to_le_bytes()).collect())
        }
        Element::Raw(b) => (REG_BINARY, b.clone()),
        _ => return None,
    })
}

/// A new store holding `objects` (each written as given, its elements in code order).
/// Refused, with nothing written: an identifier that is no GUID, an element whose value
/// does not fit its code's format, a device this writer does not make.
pub fn write(objects: &[Object], file: &StoreFile, ctx: &Ctx) -> Result<Vec<u8>> {
    let bad = |e: rehost_regf::Error| ctx.invalid(format!("new BCD store: {e}"));
    let spec = NewHive {
        root_name: ROOT_NAME.into(),
        minor: MINOR,
        file_name: file.path.clone(),
        security: store_descriptor(),
        timestamp: file.timestamp,
    };
    let mut ed = Editor::create_from(&spec).map_err(bad)?;
    ed.create_key("Description").map_err(bad)?;
    let dword = |v: u32| v.to_le_bytes().to_vec();
    for (name, kind, data) in [
        ("KeyName", REG_SZ, utf16z(KEY_NAME)),
        ("System", REG_DWORD, dword(1)),
        ("TreatAsSystem", REG_DWORD, dword(1)),
    ] {
        ed.set_value("Description", name, kind, &data)
            .map_err(bad)?;
    }
    ed.create_key("Objects").map_err(bad)?;
    for o in objects {
        let Some(id) = identifier(&o.id) else {
            return Err(ctx.invalid(format!("BCD object {:?} is not a GUID", o.id)));
        };
        let base = format!("Objects\\{id}");
        ed.create_key(&format!("{base}\\Description"))
            .map_err(bad)?;
        ed.set_value(
            &format!("{base}\\Description"),
            "Type",
            REG_DWORD,
            &dword(o.kind),
        )
        .map_err(bad)?;
        ed.create_key(&format!("{base}\\Elements")).map_err(bad)?;
        let mut elements: Vec<&(u32, Element)> = o.elements.iter().collect();
        elements.sort_by_key(|(c, _)| *c);
        for (code, e) in elements {
            let Some((kind, data)) = encode(*code, e) else {
                return Err(ctx.invalid(format!(
                    "BCD element {code:08x} of {id}: {e:?} does not fit its format"
                )));
            };
            let key = format!("{base}\\Elements\\{code:08x}");
            ed.create_key(&key).map_err(bad)?;
            ed.set_value(&key, "Element", kind, &data).map_err(bad)?;
        }
    }
    ed.check().map_err(bad)?;
    Ok(ed.save())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bcd;
    use rehost_core::Layer;
    use rehost_regf::hive::Hive;

    fn ctx() -> Ctx {
        Ctx::new("new", Layer::Bcd)
    }

    #[test]
    fn objects_written_read_back_as_they_were_given() {
        let gpt = PartitionRef::Gpt {
            disk: "33333333-aaaa-4bbb-8ccc-000000000000".into(),
            partition: "33333333-aaaa-4bbb-8ccc-000000000003".into(),
        };
        let objects = vec![Object {
            id: "{11111111-2222-4333-8444-555555555555}".into(),
            kind: 0x1020_0003,
            elements: vec![
                (0x1100_0001, partition(&gpt)),
                (0x1200_0002, Element::String("\\x.efi".into())),
                (0x1400_0006, Element::ObjectList(vec![bcd::BOOTMGR.into()])),
                (0x1600_0060, Element::Boolean(true)),
                (0x1700_0077, Element::IntegerList(vec![0x1500_0075])),
                (0x2100_0001, Element::Device(Device::Boot)),
                (0x2300_0003, Element::Object(bcd::FWBOOTMGR.into())),
                (0x2500_0020, Element::Integer(0)),
            ],
        }];
        let file = StoreFile {
            path: "\\Boot\\BCD".into(),
            timestamp: 1,
        };
        let b = write(&objects, &file, &ctx()).unwrap();
        let h = Hive::parse(b, ctx()).unwrap();
        let read = bcd::objects(&h).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(
            (read[0].id.as_str(), read[0].kind),
            (objects[0].id.as_str(), 0x1020_0003)
        );
        assert_eq!(read[0].elements, objects[0].elements);
    }

    #[test]
    fn values_that_do_not_fit_their_format_are_refused() {
        let file = StoreFile {
            path: String::new(),
            timestamp: 1,
        };
        let one = |id: &str, code: u32, e: Element| {
            write(
                &[Object {
                    id: id.into(),
                    kind: 0x1020_0003,
                    elements: vec![(code, e)],
                }],
                &file,
                &ctx(),
            )
        };
        let id = "{11111111-2222-4333-8444-555555555555}";
        assert!(one(id, 0x1200_0002, Element::Integer(1)).is_err());
        assert!(one(id, 0x2300_0003, Element::Object("nope".into())).is_err());
        assert!(one("nope", 0x1200_0002, Element::String("x".into())).is_err());
        let ram = Device::Ramdisk {
            partition: None,
            path: "\\x.wim".into(),
        };
        assert!(one(id, 0x1100_0001, Element::Device(ram)).is_err());
        assert!(one(id, 0x1200_0002, Element::String("x".into())).is_ok());
    }
}
