//! MountedDevices, storage services, the CriticalDeviceDatabase, DriverDatabase and class
//! filters: what decides STOP 0x7B and the wrong drive letter.

use super::install::{control_set_key, named_sets};
use super::knowledge::Knowledge;
use super::report::{ClassFilters, Install, MountedData, MountedDevice, ServiceReport};
use super::scene::Scene;
use rehost_core::error::Result;
use rehost_formats::bcd::PartitionRef;
use rehost_regf::hive::{Hive, Value};

/// Decodes a MountedDevices value: 12 bytes are an MBR signature and offset, `DMIO:ID:`
/// and 16 bytes a GPT partition GUID, anything else a device path.
pub fn decode(bytes: &[u8]) -> MountedData {
    if bytes.len() == 12 {
        return MountedData::Mbr {
            signature: format!(
                "{:08x}",
                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
            ),
            offset: u64::from_le_bytes(bytes[4..12].try_into().unwrap_or_default()),
        };
    }
    if bytes.len() == 24 && &bytes[..8] == b"DMIO:ID:" {
        return MountedData::Gpt {
            partition: rehost_core::le::guid(bytes, 8),
        };
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units)
        .ok()
        .filter(|t| t.chars().all(|c| !c.is_control()))
        .unwrap_or_else(|| bytes.iter().map(|b| format!("{b:02x}")).collect());
    MountedData::Other { text }
}

/// The MountedDevices data that names a partition (the inverse of [`decode`]): the MBR disk
/// signature and the partition's start in bytes (12 bytes), or `DMIO:ID:` and the GPT
/// partition GUID (24 bytes). `None` when the reference does not parse.
pub fn encode(p: &PartitionRef) -> Option<Vec<u8>> {
    match p {
        PartitionRef::Mbr { signature, offset } => {
            let sig = u32::from_str_radix(signature, 16).ok()?;
            let mut b = sig.to_le_bytes().to_vec();
            b.extend_from_slice(&offset.to_le_bytes());
            Some(b)
        }
        PartitionRef::Gpt { partition, .. } => {
            let g = uuid::Uuid::parse_str(partition).ok()?;
            let mut b = b"DMIO:ID:".to_vec();
            b.extend_from_slice(&g.to_bytes_le());
            Some(b)
        }
    }
}

/// The drive letters and volume names, and the volumes of this image they name.
pub fn mounted(scene: &Scene, install: &mut Install, system: &Hive) -> Result<()> {
    for (name, value) in system.values("MountedDevices")? {
        let lower = name.to_ascii_lowercase();
        let letter = lower.starts_with("\\dosdevices\\");
        if !letter && !lower.starts_with("\\??\\volume{") {
            continue;
        }
        let Value::Binary { bytes, .. } = value else {
            continue;
        };
        let data = decode(&bytes);
        let volume = match &data {
            MountedData::Mbr { signature, offset } => scene.resolve(&PartitionRef::Mbr {
                signature: signature.clone(),
                offset: *offset,
            }),
            MountedData::Gpt { partition } => scene.resolve(&PartitionRef::Gpt {
                disk: String::new(),
                partition: partition.clone(),
            }),
            MountedData::Other { .. } => None,
        };
        if !letter {
            install
                .volume_names
                .push(MountedDevice { name, data, volume });
            continue;
        }
        if volume == Some(install.volume) {
            install.system_letter = name.rsplit('\\').next().map(str::to_string);
        }
        install
            .mounted_devices
            .push(MountedDevice { name, data, volume });
    }
    install.mounted_devices.sort_by(|a, b| a.name.cmp(&b.name));
    install.volume_names.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(())
}

/// The driver file a service's ImagePath names, as a path on the install's volume.
pub fn driver_path(root: &str, service: &str, image_path: Option<&str>) -> String {
    let Some(p) = image_path else {
        return format!("{root}\\System32\\drivers\\{service}.sys");
    };
    let p = p.trim().trim_matches('"');
    let lower = p.to_ascii_lowercase();
    for prefix in ["\\systemroot\\", "%systemroot%\\", "\\??\\c:\\windows\\"] {
        if lower.starts_with(prefix) {
            return format!("{root}\\{}", &p[prefix.len()..]);
        }
    }
    if lower.starts_with("system32\\") {
        return format!("{root}\\{p}");
    }
    // An absolute path ("\??\C:\...", "C:\...") names a drive letter: take it on this volume.
    match p.find(":\\") {
        Some(i) => p[i + 1..].to_string(),
        None => format!("{root}\\{p}"),
    }
}

/// The service `name` of control set `cs` (any service, not only the storage-relevant ones:
/// its role is "other" unless the caller knows better), with its driver file looked up on
/// the install's volume; `None` when the key does not exist. `install` is the volume and
/// system root.
pub fn service(
    scene: &Scene,
    install: (u32, &str),
    system: &Hive,
    cs: u32,
    name: &str,
) -> Result<Option<ServiceReport>> {
    let key = format!("{}\\Services\\{name}", control_set_key(cs));
    // One walk to the key reads all its values.
    let Some(values) = system.key_values(&key)? else {
        return Ok(None);
    };
    let get = |value: &str| {
        values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(value))
            .map(|(_, v)| v)
    };
    let num = |value: &str| get(value).and_then(|v| v.as_u64()).map(|v| v as u32);
    let string = |value: &str| get(value).and_then(|v| v.as_str()).map(str::to_string);
    let image_path = string("ImagePath");
    let file = driver_path(install.1, name, image_path.as_deref());
    let start_override = system
        .values(&format!("{key}\\StartOverride"))?
        .into_iter()
        .filter_map(|(n, v)| Some((n, v.as_u64()? as u32)))
        .collect();
    Ok(Some(ServiceReport {
        control_set: cs,
        name: name.to_string(),
        role: "other".into(),
        start: num("Start"),
        start_override,
        kind: num("Type"),
        group: string("Group"),
        error_control: num("ErrorControl"),
        image_path,
        file_present: scene.is_file(install.0, &file),
    }))
}

/// The storage-relevant services of every control set `Select` names, the
/// CriticalDeviceDatabase, DriverDatabase and the class filters.
pub fn services(scene: &Scene, install: &mut Install, system: &Hive) -> Result<()> {
    let k = Knowledge::builtin();
    for cs in named_sets(&install.control_sets) {
        let base = control_set_key(cs);
        if !system.has_key(&base)? {
            continue;
        }
        for s in &k.services {
            let found = service(
                scene,
                (install.volume, &install.system_root),
                system,
                cs,
                &s.name,
            )?;
            if let Some(mut r) = found {
                r.role = s.role.clone();
                install.services.push(r);
            }
        }
        for c in &k.classes {
            let key = format!("{base}\\Control\\Class\\{}", c.guid);
            let list = |name: &str| -> Result<Vec<String>> {
                Ok(match system.value(&key, name)? {
                    Some(Value::MultiString(v)) => {
                        v.into_iter().filter(|s| !s.is_empty()).collect()
                    }
                    Some(Value::String(s)) if !s.is_empty() => vec![s],
                    _ => Vec::new(),
                })
            };
            let (upper, lower) = (list("UpperFilters")?, list("LowerFilters")?);
            if !upper.is_empty() || !lower.is_empty() {
                install.class_filters.push(ClassFilters {
                    control_set: cs,
                    class: c.name.clone(),
                    upper,
                    lower,
                });
            }
        }
    }
    if let Some(cs) = install
        .control_sets
        .current
        .or(install.control_sets.default)
    {
        let cddb = format!("{}\\Control\\CriticalDeviceDatabase", control_set_key(cs));
        if system.has_key(&cddb)? {
            install.critical_device_database = Some(system.subkeys(&cddb)?.len());
        }
    }
    install.driver_database = system.has_key("DriverDatabase")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_devices_values_decode() {
        let mbr = [0x3e, 0xa0, 0xbe, 0x5c, 0, 0, 0x10, 0, 0, 0, 0, 0];
        match decode(&mbr) {
            MountedData::Mbr { signature, offset } => {
                assert_eq!((signature.as_str(), offset), ("5cbea03e", 1 << 20))
            }
            other => panic!("{other:?}"),
        }
        let mut gpt = b"DMIO:ID:".to_vec();
        gpt.extend_from_slice(
            &uuid::Uuid::parse_str("aa11aa11-0000-4000-8000-000000000003")
                .unwrap()
                .to_bytes_le(),
        );
        match decode(&gpt) {
            MountedData::Gpt { partition } => {
                assert_eq!(partition, "aa11aa11-0000-4000-8000-000000000003")
            }
            other => panic!("{other:?}"),
        }
        // And back.
        let p = PartitionRef::Mbr {
            signature: "5cbea03e".into(),
            offset: 1 << 20,
        };
        assert_eq!(encode(&p).unwrap(), mbr);
        let p = PartitionRef::Gpt {
            disk: String::new(),
            partition: "aa11aa11-0000-4000-8000-000000000003".into(),
        };
        assert_eq!(encode(&p).unwrap(), gpt);
        let path: Vec<u8> = "\\??\\IDE#CdRom"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert!(matches!(decode(&path), MountedData::Other { text } if text == "\\??\\IDE#CdRom"));
    }

    #[test]
    fn driver_paths_resolve_on_the_install_volume() {
        assert_eq!(
            driver_path("\\WINDOWS", "atapi", None),
            "\\WINDOWS\\System32\\drivers\\atapi.sys"
        );
        assert_eq!(
            driver_path(
                "\\Windows",
                "msahci",
                Some("\\SystemRoot\\system32\\drivers\\msahci.sys")
            ),
            "\\Windows\\system32\\drivers\\msahci.sys"
        );
        assert_eq!(
            driver_path("\\Windows", "x", Some("System32\\DRIVERS\\x.sys")),
            "\\Windows\\System32\\DRIVERS\\x.sys"
        );
        assert_eq!(
            driver_path("\\Windows", "y", Some("\\??\\C:\\Program Files\\y.sys")),
            "\\Program Files\\y.sys"
        );
    }
}
