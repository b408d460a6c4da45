//! The BCD store: a registry hive of objects (`Objects\{GUID}`), each with a type and
//! elements (`Elements\<8 hex digits>\Element`) whose format is given by the element code:
//! bits 24-27 are 1 device, 2 string, 3 object, 4 object list, 5 integer, 6 boolean,
//! 7 integer list.

use rehost_core::error::Result;
use rehost_regf::hive::{Hive, Value};
use serde::Serialize;

/// The boot manager's fixed identifier (`{bootmgr}`).
pub const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/// The firmware boot manager (`{fwbootmgr}`).
pub const FWBOOTMGR: &str = "{a5a30fa2-3d06-4e9f-b5f4-a01df9d1fcba}";

/// A partition a device element names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "style", rename_all = "lowercase")]
pub enum PartitionRef {
    /// MBR disk: its signature and the partition's byte offset.
    Mbr {
        /// Disk signature, 8 hex digits.
        signature: String,
        /// Partition start in bytes.
        offset: u64,
    },
    /// GPT disk: its GUID and the partition's unique GUID.
    Gpt {
        /// Disk GUID.
        disk: String,
        /// Partition GUID.
        partition: String,
    },
}

/// A device element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Device {
    /// The device the boot manager was loaded from.
    Boot,
    /// A partition.
    Partition {
        /// Which one.
        partition: PartitionRef,
    },
    /// A RAM disk loaded from a file on a partition (WinRE, install media).
    Ramdisk {
        /// The partition holding the image, when named.
        partition: Option<PartitionRef>,
        /// The image's path.
        path: String,
    },
    /// Another kind of device, by its type number.
    Other {
        /// Device type.
        device_type: u32,
    },
}

/// An element's value, decoded by its format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", content = "value", rename_all = "snake_case")]
pub enum Element {
    /// Format 1.
    Device(Device),
    /// Format 2.
    String(String),
    /// Format 3: an object's GUID.
    Object(String),
    /// Format 4.
    ObjectList(Vec<String>),
    /// Format 5.
    Integer(u64),
    /// Format 6.
    Boolean(bool),
    /// Format 7.
    IntegerList(Vec<u64>),
    /// A value that does not fit its format.
    Raw(Vec<u8>),
}

/// One object of the store.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    /// `{guid}`, lower case.
    pub id: String,
    /// Object type (0x10100002 boot manager, 0x10200003 OS loader, 0x10200004 resume, ...).
    pub kind: u32,
    /// Elements by code, in code order.
    pub elements: Vec<(u32, Element)>,
}

impl Object {
    /// The element `code`, if present.
    pub fn element(&self, code: u32) -> Option<&Element> {
        self.elements
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, e)| e)
    }
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn guid_at(b: &[u8], o: usize) -> Option<String> {
    rehost_core::le::slice(b, o, 16).map(|g| rehost_core::le::guid(g, 0))
}

/// A partition descriptor starting at `p`: type 6 and length 0x48 at `p + 8`.
fn partition_at(b: &[u8], p: usize) -> Option<PartitionRef> {
    if u32_at(b, p)? != 6 || u32_at(b, p + 8)? != 0x48 || b.len() < p + 0x38 {
        return None;
    }
    match u32_at(b, p + 0x24)? {
        1 => Some(PartitionRef::Mbr {
            signature: format!("{:08x}", u32_at(b, p + 0x28)?),
            offset: u64::from_le_bytes(b.get(p + 0x10..p + 0x18)?.try_into().ok()?),
        }),
        0 => Some(PartitionRef::Gpt {
            disk: guid_at(b, p + 0x28)?,
            partition: guid_at(b, p + 0x10)?,
        }),
        _ => None,
    }
}

/// Decodes a device element (its descriptor starts after a 16-byte GUID).
pub fn device(b: &[u8]) -> Device {
    match u32_at(b, 0x10) {
        Some(5) => Device::Boot,
        Some(6) => match partition_at(b, 0x10) {
            Some(partition) => Device::Partition { partition },
            None => Device::Other { device_type: 6 },
        },
        Some(t) => {
            // A RAM disk nests the descriptor of the partition holding its image, followed
            // by the image's path (UTF-16, NUL-terminated).
            // The nested descriptor is a partition (type 6) or the boot device (type 5).
            let nested = (0x14..b.len().saturating_sub(0x38))
                .step_by(4)
                .find_map(|p| match (u32_at(b, p), u32_at(b, p + 8)) {
                    (Some(6), Some(0x48)) => partition_at(b, p).map(|r| (p, Some(r))),
                    (Some(5), Some(0x48)) => Some((p, None)),
                    _ => None,
                });
            match nested {
                Some((p, r)) => {
                    let tail = b.get(p + 0x48..).unwrap_or(&[]);
                    let units: Vec<u16> = tail
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .skip_while(|u| *u == 0)
                        .take_while(|u| *u != 0)
                        .collect();
                    Device::Ramdisk {
                        partition: r,
                        path: String::from_utf16_lossy(&units),
                    }
                }
                None => Device::Other { device_type: t },
            }
        }
        None => Device::Other {
            device_type: u32::MAX,
        },
    }
}

fn element(code: u32, v: Value) -> Element {
    let format = (code >> 24) & 0xF;
    match (format, v) {
        (1, Value::Binary { bytes, .. }) => Element::Device(device(&bytes)),
        (2, Value::String(s)) => Element::String(s),
        (3, Value::String(s)) => Element::Object(s.to_lowercase()),
        (4, Value::MultiString(v)) => {
            Element::ObjectList(v.into_iter().map(|s| s.to_lowercase()).collect())
        }
        (5, Value::Binary { bytes, .. }) if bytes.len() <= 8 => {
            let mut a = [0u8; 8];
            a[..bytes.len()].copy_from_slice(&bytes);
            Element::Integer(u64::from_le_bytes(a))
        }
        (6, Value::Binary { bytes, .. }) if !bytes.is_empty() => {
            Element::Boolean(bytes.iter().any(|b| *b != 0))
        }
        (6, Value::Dword(d)) => Element::Boolean(d != 0),
        (7, Value::Binary { bytes, .. }) => Element::IntegerList(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        (_, Value::Binary { bytes, .. }) => Element::Raw(bytes),
        (_, Value::String(s)) => Element::String(s),
        (_, Value::MultiString(v)) => Element::ObjectList(v),
        (_, Value::Dword(d)) => Element::Integer(d as u64),
        (_, Value::Qword(q)) => Element::Integer(q),
    }
}

/// Reads every object of a BCD store. A hive without `Description\KeyName` =
/// "BCD00000000" is still read; the caller decides whether it is one.
pub fn objects(hive: &Hive) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for id in hive.subkeys("Objects")? {
        let base = format!("Objects\\{id}");
        let kind = hive
            .number(&format!("{base}\\Description"), "Type")?
            .unwrap_or(0) as u32;
        let mut elements = Vec::new();
        for e in hive.subkeys(&format!("{base}\\Elements"))? {
            let Ok(code) = u32::from_str_radix(&e, 16) else {
                continue;
            };
            if let Some(v) = hive.value(&format!("{base}\\Elements\\{e}"), "Element")? {
                elements.push((code, element(code, v)));
            }
        }
        elements.sort_by_key(|(c, _)| *c);
        out.push(Object {
            id: id.to_lowercase(),
            kind,
            elements,
        });
    }
    Ok(out)
}

/// A binary element of a store as it is stored: a device, an integer or a boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawElement {
    /// The object's key name, as stored (`{9dea862c-...}`).
    pub object: String,
    /// The element's key name, as stored (`11000001`).
    pub element: String,
    /// The element code.
    pub code: u32,
    /// The value's bytes.
    pub bytes: Vec<u8>,
}

/// Every REG_BINARY element of every object of a store, with the key names as stored.
pub fn binary_elements(hive: &Hive) -> Result<Vec<RawElement>> {
    let mut out = Vec::new();
    for object in hive.subkeys("Objects")? {
        let base = format!("Objects\\{object}\\Elements");
        for element in hive.subkeys(&base)? {
            let Ok(code) = u32::from_str_radix(&element, 16) else {
                continue;
            };
            if let Some(Value::Binary { bytes, .. }) =
                hive.value(&format!("{base}\\{element}"), "Element")?
            {
                out.push(RawElement {
                    object: object.clone(),
                    element,
                    code,
                    bytes,
                });
            }
        }
    }
    Ok(out)
}

/// Every partition descriptor in a device element (the element's own, or one nested in a
/// RAM disk's), by the offset it starts at.
pub fn partitions(b: &[u8]) -> Vec<(usize, PartitionRef)> {
    let mut out = Vec::new();
    let mut p = 0x10;
    while p + 0x38 <= b.len() {
        if let Some(r) = partition_at(b, p) {
            out.push((p, r));
            p += 0x48;
            continue;
        }
        p += 4;
    }
    out
}

fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.to_bytes_le())
}

/// Writes the identity of `r` into the partition descriptor at `p` of `b`: the partition
/// (start in bytes, or unique GUID), the partition style and the disk (signature, or GUID).
/// `None` when `p` holds no descriptor or `r` does not parse; `b` is then unchanged.
pub fn set_partition(b: &mut [u8], p: usize, r: &PartitionRef) -> Option<()> {
    partition_at(b, p)?;
    let (partition, style, disk) = match r {
        PartitionRef::Mbr { signature, offset } => {
            let sig = u32::from_str_radix(signature, 16).ok()?;
            let mut part = [0u8; 16];
            part[..8].copy_from_slice(&offset.to_le_bytes());
            let mut disk = [0u8; 16];
            disk[..4].copy_from_slice(&sig.to_le_bytes());
            (part, 1u32, disk)
        }
        PartitionRef::Gpt { disk, partition } => (guid_bytes(partition)?, 0, guid_bytes(disk)?),
    };
    b[p + 0x10..p + 0x20].copy_from_slice(&partition);
    b[p + 0x24..p + 0x28].copy_from_slice(&style.to_le_bytes());
    b[p + 0x28..p + 0x38].copy_from_slice(&disk);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr(signature: &str, offset: u64) -> PartitionRef {
        PartitionRef::Mbr {
            signature: signature.into(),
            offset,
        }
    }

    #[test]
    fn descriptors_are_found_and_rewritten_in_place() {
        // A partition device, as bcdedit writes it.
        let mut b = vec![0u8; 88];
        b[0x10] = 6;
        b[0x18] = 0x48;
        b[0x14] = 0xAB; // a byte rehost must not touch
        set_partition(&mut b, 0x10, &mbr("2019b105", 1 << 20)).unwrap();
        assert_eq!(
            device(&b),
            Device::Partition {
                partition: mbr("2019b105", 1 << 20)
            }
        );
        // Nested in a RAM disk, after a header that holds 5 and 6 elsewhere.
        let mut ram = vec![0u8; 0x44];
        ram[0x20] = 3;
        ram[0x40] = 5;
        ram.extend_from_slice(&b[0x10..0x58]);
        ram.extend("\\x.wim\0".encode_utf16().flat_map(u16::to_le_bytes));
        let found = partitions(&ram);
        assert_eq!(found, vec![(0x44, mbr("2019b105", 1 << 20))]);
        let gpt = PartitionRef::Gpt {
            disk: "33333333-aaaa-4bbb-8ccc-000000000000".into(),
            partition: "33333333-aaaa-4bbb-8ccc-000000000003".into(),
        };
        let before = ram.clone();
        set_partition(&mut ram, 0x44, &gpt).unwrap();
        assert_eq!(partitions(&ram), vec![(0x44, gpt.clone())]);
        assert_eq!(
            device(&ram),
            Device::Ramdisk {
                partition: Some(gpt),
                path: "\\x.wim".into()
            }
        );
        // Only the identity, style and disk changed.
        let changed: Vec<usize> = (0..ram.len()).filter(|i| ram[*i] != before[*i]).collect();
        assert!(changed
            .iter()
            .all(|i| (0x54..0x64).contains(i) || (0x68..0x7C).contains(i)));
        assert!(set_partition(&mut ram, 0x40, &mbr("1", 0)).is_none());
        assert!(set_partition(&mut b, 0x10, &mbr("not hex", 0)).is_none());
    }
}
