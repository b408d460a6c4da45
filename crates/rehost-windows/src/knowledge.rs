//! Windows knowledge, as data: the HAL and kernel tables and the storage-relevant services,
//! from `profiles/*.toml`, embedded in the binary.

use serde::Deserialize;
use std::sync::OnceLock;

/// One HAL variant.
#[derive(Debug, Clone, Deserialize)]
pub struct Hal {
    /// OriginalFilename of the variant.
    pub file: String,
    /// HardwareID values setup records for it.
    pub hardware_ids: Vec<String>,
    /// What machine it drives.
    pub description: String,
    /// The kernel flavour it needs: "up" or "mp".
    pub processors: String,
    /// The section of hal.inf that installs it (the class instance's InfSection).
    #[serde(default)]
    pub inf_section: Option<String>,
    /// Its name in hal.inf (the class instance's DriverDesc), when not `description`.
    #[serde(default)]
    pub driver_desc: Option<String>,
    /// ACPI machine.
    pub acpi: bool,
    /// APIC machine.
    pub apic: bool,
    /// The single HAL of x64 and Windows 8+.
    #[serde(default)]
    pub modern: bool,
}

/// One kernel variant.
#[derive(Debug, Clone, Deserialize)]
pub struct Kernel {
    /// OriginalFilename.
    pub file: String,
    /// "up" or "mp".
    pub processors: String,
    /// Physical Address Extension.
    pub pae: bool,
}

/// A release from which, on a processor with NX, the NT 5.x loader enables Data Execution
/// Prevention and with it PAE unless boot.ini turns DEP off.
#[derive(Debug, Clone, Deserialize)]
pub struct Dep {
    /// "5.1", "5.2".
    pub version: String,
    /// The first kernel FileVersion revision (its fourth part) of that release with DEP.
    pub min_revision: u32,
}

/// A storage-relevant service.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    /// Service key name.
    pub name: String,
    /// "controller", "stack", "hypervisor" or "cpu".
    pub role: String,
    /// What it drives.
    #[serde(rename = "for")]
    pub drives: String,
    /// The platform a "hypervisor" driver belongs to ("xen", "parallels", ...).
    #[serde(default)]
    pub platform: Option<String>,
    /// The CPU vendor a "cpu" driver is for ("intel", "amd"); none for generic ones.
    #[serde(default)]
    pub vendor: Option<String>,
    /// A driver of the disk stack that starts at boot on every Windows that has it.
    #[serde(default)]
    pub always_boot: bool,
    /// The device class (a `[[class]]` name) of what it drives: the ClassGUID of the
    /// CriticalDeviceDatabase entries that bind a device to it.
    #[serde(default)]
    pub class: Option<String>,
    /// The load order group its service key names (the INF's LoadOrderGroup).
    #[serde(default)]
    pub group: Option<String>,
    /// It drives every controller of a PCI class code (`PCI\CC_010601`), not a vendor's
    /// devices: Windows binds it by the class code.
    #[serde(default)]
    pub by_class: bool,
}

/// A device below a boot controller that Plug and Play binds through the
/// CriticalDeviceDatabase (an IDE channel, the disk), and the service that drives it.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    /// Its ID as Plug and Play reports it (`GenDisk`, `PRIMARY_IDE_CHANNEL`).
    pub id: String,
    /// The service.
    pub service: String,
    /// Its device class (a `[[class]]` name).
    pub class: String,
}

/// A device class whose filters sit in the disk stack.
#[derive(Debug, Clone, Deserialize)]
pub struct Class {
    /// Class GUID in braces, lower case.
    pub guid: String,
    /// Class name.
    pub name: String,
}

/// The HAL a loader loads when the boot entry names none, where it is not hal.dll.
#[derive(Debug, Clone, Deserialize)]
pub struct LoaderHal {
    /// The install's architecture ("x86").
    pub arch: String,
    /// The first Windows version ("6.2") whose loader does so.
    pub from: String,
    /// The file it loads from System32.
    pub file: String,
}

/// A release that names itself as another (Windows 11 as "Windows 10").
#[derive(Debug, Clone, Deserialize)]
pub struct Rename {
    /// "Client" or "Server".
    pub installation_type: String,
    /// First build of the release.
    pub min_build: u32,
    /// The ProductName prefix it keeps.
    pub from: String,
    /// Its real name.
    pub to: String,
}

#[derive(Deserialize)]
struct ReleaseFile {
    rename: Vec<Rename>,
}

#[derive(Deserialize)]
struct HalFile {
    hal: Vec<Hal>,
    kernel: Vec<Kernel>,
    #[serde(default)]
    dep: Vec<Dep>,
    #[serde(default)]
    loader_hal: Vec<LoaderHal>,
}

#[derive(Deserialize)]
struct StorageFile {
    service: Vec<Service>,
    class: Vec<Class>,
    #[serde(default)]
    device: Vec<Device>,
}

/// Everything the windows layer knows, loaded once.
pub struct Knowledge {
    /// HAL variants.
    pub hals: Vec<Hal>,
    /// Kernel variants.
    pub kernels: Vec<Kernel>,
    /// The releases with DEP (and so PAE by default).
    pub dep: Vec<Dep>,
    /// The HALs loaders load by default where it is not hal.dll.
    pub loader_hals: Vec<LoaderHal>,
    /// Storage-relevant services.
    pub services: Vec<Service>,
    /// Storage device classes.
    pub classes: Vec<Class>,
    /// Devices below boot controllers and their services.
    pub devices: Vec<Device>,
    /// Releases that keep an older release's name.
    pub renames: Vec<Rename>,
}

impl Knowledge {
    /// Parses the tables (TOML text).
    pub fn parse(hal: &str, storage: &str, releases: &str) -> Result<Knowledge, toml::de::Error> {
        let h: HalFile = toml::from_str(hal)?;
        let s: StorageFile = toml::from_str(storage)?;
        let r: ReleaseFile = toml::from_str(releases)?;
        Ok(Knowledge {
            hals: h.hal,
            kernels: h.kernel,
            dep: h.dep,
            loader_hals: h.loader_hal,
            services: s.service,
            classes: s.class,
            devices: s.device,
            renames: r.rename,
        })
    }

    /// The name a release goes by, given what ProductName says.
    pub fn product_name(
        &self,
        registry: &str,
        build: Option<u32>,
        installation_type: Option<&str>,
    ) -> String {
        for r in &self.renames {
            let applies = build.is_some_and(|b| b >= r.min_build)
                && installation_type.is_some_and(|t| t.eq_ignore_ascii_case(&r.installation_type))
                && registry.starts_with(&r.from);
            if applies {
                return format!("{}{}", r.to, &registry[r.from.len()..]);
            }
        }
        registry.to_string()
    }

    /// The tables built into rehost.
    pub fn builtin() -> &'static Knowledge {
        static K: OnceLock<Knowledge> = OnceLock::new();
        K.get_or_init(|| {
            Knowledge::parse(
                include_str!("../../../profiles/hal.toml"),
                include_str!("../../../profiles/storage.toml"),
                include_str!("../../../profiles/releases.toml"),
            )
            .expect("the built-in profiles parse (a unit test checks them)")
        })
    }

    /// HAL variants with this OriginalFilename (case-insensitive).
    pub fn hals_named(&self, file: &str) -> Vec<&Hal> {
        self.hals
            .iter()
            .filter(|h| h.file.eq_ignore_ascii_case(file))
            .collect()
    }

    /// HAL variants that setup records with this HardwareID.
    pub fn hals_with_id(&self, id: &str) -> Vec<&Hal> {
        self.hals
            .iter()
            .filter(|h| h.hardware_ids.iter().any(|i| i.eq_ignore_ascii_case(id)))
            .collect()
    }

    /// The service of this name (case-insensitive), if it is one rehost knows.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The GUID of the device class named `name` (`HDC`), in braces, upper case as Windows
    /// writes it in ClassGUID values.
    pub fn class_guid(&self, name: &str) -> Option<String> {
        self.classes
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.guid.to_ascii_uppercase())
    }

    /// The device of this ID (case-insensitive), if it is one rehost knows.
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.id.eq_ignore_ascii_case(id))
    }

    /// The HAL variants that can be `file` given what setup recorded (`hardware_id`): the
    /// one recorded under that id when there is one, else every variant of that name.
    pub fn hal_variant(&self, file: &str, hardware_id: Option<&str>) -> Option<&Hal> {
        let named = self.hals_named(file);
        hardware_id
            .and_then(|id| {
                named
                    .iter()
                    .find(|h| h.hardware_ids.iter().any(|i| i.eq_ignore_ascii_case(id)))
                    .copied()
            })
            .or(named.first().copied())
    }

    /// The file the loader of Windows `major.minor` on `arch` loads as the HAL when the
    /// boot entry names none: hal.dll unless `loader_hal` says otherwise.
    pub fn loader_hal(&self, arch: &str, major: u32, minor: u32) -> &str {
        let version = |s: &str| {
            let mut it = s.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0))
        };
        self.loader_hals
            .iter()
            .filter(|l| l.arch.eq_ignore_ascii_case(arch) && version(&l.from) <= (major, minor))
            .max_by_key(|l| version(&l.from))
            .map_or("hal.dll", |l| l.file.as_str())
    }

    /// The kernel variant with this OriginalFilename.
    pub fn kernel(&self, file: &str) -> Option<&Kernel> {
        self.kernels
            .iter()
            .find(|k| k.file.eq_ignore_ascii_case(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        let k = Knowledge::builtin();
        assert!(k
            .hals_named("halmacpi.dll")
            .iter()
            .all(|h| h.processors == "mp"));
        assert_eq!(k.hals_with_id("acpiapic_up")[0].file, "halaacpi.dll");
        assert!(k
            .kernel("ntkrpamp.exe")
            .is_some_and(|k| k.pae && k.processors == "mp"));
        assert!(k
            .services
            .iter()
            .any(|s| s.name == "storahci" && s.role == "controller"));
        assert_eq!(k.classes.len(), 5);
        // Every class a service or device names is in the class table.
        for c in k
            .services
            .iter()
            .filter_map(|s| s.class.as_deref())
            .chain(k.devices.iter().map(|d| d.class.as_str()))
        {
            assert!(k.class_guid(c).is_some(), "unknown class {c}");
        }
        assert!(k.devices.iter().all(|d| k.service(&d.service).is_some()));
        assert_eq!(
            k.class_guid("hdc").as_deref(),
            Some("{4D36E96A-E325-11CE-BFC1-08002BE10318}")
        );
        assert_eq!(
            k.product_name("Windows 10 Pro", Some(22631), Some("Client")),
            "Windows 11 Pro"
        );
        assert_eq!(
            k.product_name("Windows 10 Pro", Some(19045), Some("Client")),
            "Windows 10 Pro"
        );
    }
}
