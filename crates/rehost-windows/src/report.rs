//! What `inspect` reports: plain values, serialised as the JSON users script against.

use rehost_disk::{Format, Subformat};
use rehost_formats::bcd::PartitionRef;
use rehost_volume::Partitioning;
use serde::Serialize;

/// Everything found on one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// The image file.
    pub image: String,
    /// Container format.
    pub format: Format,
    /// Fixed, dynamic or differencing.
    pub subformat: Subformat,
    /// Size of the virtual disk.
    pub virtual_size: u64,
    /// "mbr", "gpt" or "none".
    pub partitioning: Partitioning,
    /// MBR disk signature.
    pub disk_signature: Option<String>,
    /// GPT disk GUID.
    pub disk_guid: Option<String>,
    /// The volumes and their state.
    pub volumes: Vec<VolumeReport>,
    /// Boot configuration stores found (boot.ini, BCD).
    pub boot_stores: Vec<BootStore>,
    /// Windows installs.
    pub installs: Vec<Install>,
    /// What could not be read (each names the image, layer and place); the rest still is.
    pub errors: Vec<String>,
    /// Bytes read from the image files.
    pub bytes_read: u64,
    /// Wall-clock time the inspection took, in milliseconds.
    pub elapsed_ms: f64,
}

/// One volume.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeReport {
    /// Number as `rehost volumes` shows it.
    pub index: u32,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// What it holds: "ntfs", "fat32", "bitlocker", ...
    pub fs: String,
    /// BitLocker-encrypted.
    pub encrypted: bool,
    /// MBR active flag.
    pub bootable: bool,
    /// GPT partition GUID.
    pub partition_guid: Option<String>,
    /// File system label.
    pub label: Option<String>,
    /// NTFS dirty flag.
    pub dirty: Option<bool>,
    /// NTFS `$LogFile` has nothing to replay.
    pub logfile_clean: Option<bool>,
    /// A hibernation image waits in `hiberfil.sys`.
    pub hibernated: Option<bool>,
    /// NTFS: the Volume Shadow Copy structures, when the volume has them (its shadow
    /// copies, when each was made, its store's size; a damaged catalog said).
    pub shadow_copies: Option<rehost_image::ntfs::vss::ShadowCopies>,
}

/// A partition named by a boot store or MountedDevices, and the volume of this image it is.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRef {
    /// What the store says.
    pub device: String,
    /// The volume of this image, or `None` when it names a disk or partition not here.
    pub volume: Option<u32>,
    /// The volume of this image the device lies on (the partition itself, or the one
    /// holding a RAM disk's image), or `None` when it is not on this disk.
    pub on_volume: Option<u32>,
}

/// A boot configuration store.
#[derive(Debug, Clone, Serialize)]
pub struct BootStore {
    /// "boot.ini" or "bcd".
    pub kind: String,
    /// The volume holding it.
    pub volume: u32,
    /// Its path there.
    pub path: String,
    /// The device `{bootmgr}` loads from (BCD).
    pub bootmgr_device: Option<DeviceRef>,
    /// The entries that start an operating system.
    pub entries: Vec<BootEntry>,
    /// The resume loaders (winresume), which start a hibernated Windows again (BCD).
    pub resume: Vec<BootEntry>,
}

/// One entry of a boot store that starts Windows.
#[derive(Debug, Clone, Serialize)]
pub struct BootEntry {
    /// The ARC path (boot.ini) or object GUID (BCD).
    pub id: String,
    /// Menu text.
    pub description: String,
    /// The store's default entry.
    pub default: bool,
    /// The loader's device (BCD ApplicationDevice).
    pub device: Option<DeviceRef>,
    /// The system's device (BCD OSDevice; boot.ini's partition).
    pub os_device: Option<DeviceRef>,
    /// The loader (`\Windows\system32\winload.exe`), BCD only.
    pub path: Option<String>,
    /// The system root on the OS device.
    pub system_root: Option<String>,
    /// A HAL other than hal.dll (`/HAL=`, BCD HalPath).
    pub hal: Option<String>,
    /// A kernel other than ntoskrnl.exe (`/KERNEL=`, BCD KernelPath).
    pub kernel: Option<String>,
    /// BCD DetectKernelAndHal (Vista).
    pub detect_hal: Option<bool>,
    /// boot.ini switches.
    pub switches: Vec<String>,
}

/// `Select`: which control set is which.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControlSets {
    /// The set in use at the last boot.
    pub current: Option<u32>,
    /// The set the next boot uses.
    pub default: Option<u32>,
    /// Last Known Good.
    pub last_known_good: Option<u32>,
    /// The set that failed, if any.
    pub failed: Option<u32>,
}

/// The HAL the default boot entry loads (hal.dll, or the file its `/HAL=` or BCD `hal`
/// names), and what setup recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HalReport {
    /// The file in System32 the loader loads as the HAL.
    pub file: String,
    /// What names that file when it is not hal.dll (`/HAL= of the default boot.ini
    /// entry`, ...); `None` for hal.dll, which the loader loads by default.
    pub loaded_by: Option<String>,
    /// OriginalFilename of that file.
    pub original_filename: Option<String>,
    /// FileVersion of that file.
    pub file_version: Option<String>,
    /// HardwareID under Enum\Root\ACPI_HAL\0000 or PCI_HAL\0000.
    pub hardware_id: Option<String>,
    /// Which of the two keys held it.
    pub hardware_id_key: Option<String>,
    /// The kernel flavour the HAL needs ("up" or "mp").
    pub processors: Option<String>,
    /// hal.dll is a variant setup records under this HardwareID. Not compared (`None`)
    /// when the boot entry loads another file: setup's record is of hal.dll.
    pub agrees: Option<bool>,
}

/// A kernel file.
#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    /// File name in System32.
    pub file: String,
    /// Whether the default boot entry loads it: the file its `/KERNEL=` (or BCD `kernel`)
    /// names, else ntoskrnl.exe and ntkrnlpa.exe (the loader chooses one by PAE).
    pub loaded: bool,
    /// What names it when it is not ntoskrnl.exe or ntkrnlpa.exe (`/KERNEL= of the default
    /// boot.ini entry`, ...).
    pub loaded_by: Option<String>,
    /// OriginalFilename.
    pub original_filename: Option<String>,
    /// FileVersion.
    pub file_version: Option<String>,
    /// "up" or "mp".
    pub processors: Option<String>,
    /// Physical Address Extension.
    pub pae: Option<bool>,
    /// Its flavour is the one the HAL needs (compared for the kernels loaded only).
    pub matches_hal: Option<bool>,
}

/// The versions of the four files that must come from one build.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Versions {
    /// The HAL the default boot entry loads ([`HalReport::file`]).
    pub hal: Option<String>,
    /// The kernel it loads: ntoskrnl.exe, or the file `/KERNEL=` names.
    pub ntoskrnl: Option<String>,
    /// kernel32.dll.
    pub kernel32: Option<String>,
    /// ntdll.dll.
    pub ntdll: Option<String>,
    /// They disagree (builds, or service pack levels on NT 5.x).
    pub skew: bool,
    /// How.
    pub detail: Option<String>,
}

/// What a MountedDevices value holds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "style", rename_all = "lowercase")]
pub enum MountedData {
    /// An MBR disk signature and partition offset.
    Mbr {
        /// Disk signature.
        signature: String,
        /// Partition offset in bytes.
        offset: u64,
    },
    /// A GPT partition GUID (`DMIO:ID:`).
    Gpt {
        /// Partition GUID.
        partition: String,
    },
    /// A device path (CD-ROM, USB, ...).
    Other {
        /// The text or the bytes in hex.
        text: String,
    },
}

/// A drive letter in MountedDevices.
#[derive(Debug, Clone, Serialize)]
pub struct MountedDevice {
    /// `\DosDevices\C:`.
    pub name: String,
    /// What it holds.
    pub data: MountedData,
    /// The volume of this image it names, if any.
    pub volume: Option<u32>,
}

/// A storage-relevant service in one control set.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// Control set number.
    pub control_set: u32,
    /// Service name.
    pub name: String,
    /// "controller", "stack", "hypervisor" or "cpu".
    pub role: String,
    /// Start (0 boot .. 4 disabled).
    pub start: Option<u32>,
    /// StartOverride values (name, value).
    pub start_override: Vec<(String, u32)>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: Option<u32>,
    /// Group.
    pub group: Option<String>,
    /// ErrorControl.
    pub error_control: Option<u32>,
    /// ImagePath as written.
    pub image_path: Option<String>,
    /// The driver file named by ImagePath (or the default path) exists.
    pub file_present: bool,
}

/// UpperFilters and LowerFilters of a device class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassFilters {
    /// Control set number.
    pub control_set: u32,
    /// Class name.
    pub class: String,
    /// UpperFilters.
    pub upper: Vec<String>,
    /// LowerFilters.
    pub lower: Vec<String>,
}

/// A hive of the install.
#[derive(Debug, Clone, Serialize)]
pub struct HiveReport {
    /// SYSTEM, SOFTWARE, ...
    pub name: String,
    /// Path on the volume.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The primary file is dirty: changes wait in its transaction logs.
    pub dirty: bool,
    /// Why it is still dirty after replay (no logs, or logs that cannot be replayed).
    pub dirty_reason: Option<String>,
    /// What log replay did, when the logs were replayed in memory (the file is unchanged).
    pub replayed: Option<String>,
    /// Transaction logs beside it.
    pub logs: Vec<String>,
}

/// A boot entry that starts this install.
#[derive(Debug, Clone, Serialize)]
pub struct BootLink {
    /// "boot.ini" or "bcd".
    pub store: String,
    /// Volume of the store.
    pub store_volume: u32,
    /// The entry's id.
    pub entry: String,
    /// It is the store's default.
    pub default: bool,
}

/// How an install is started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Boot {
    /// Every boot entry of this image that starts it.
    pub entries: Vec<BootLink>,
    /// The entry a store starts by default, if one does.
    pub default_entry: Option<BootLink>,
    /// The system volume in Windows' sense: the one holding the store (and bootmgr or
    /// ntldr) that starts the install by default, else by any entry.
    pub system_volume: Option<u32>,
}

/// One Windows install.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Install {
    /// The volume holding it.
    pub volume: u32,
    /// `\Windows`, `\WINNT`, ...
    pub system_root: String,
    /// ProductName.
    pub product_name: Option<String>,
    /// "5.2", "6.1", "10.0".
    pub version: Option<String>,
    /// CurrentBuildNumber.
    pub build: Option<u32>,
    /// Update build revision (Windows 10+).
    pub ubr: Option<u32>,
    /// CSDVersion ("Service Pack 2").
    pub service_pack: Option<String>,
    /// EditionID.
    pub edition: Option<String>,
    /// "Client" or "Server".
    pub installation_type: Option<String>,
    /// From the kernel's PE machine: "x86", "x64", "arm64", "ia64".
    pub arch: Option<String>,
    /// ComputerName.
    pub hostname: Option<String>,
    /// `Select`.
    pub control_sets: ControlSets,
    /// HAL file and record.
    pub hal: HalReport,
    /// ntoskrnl.exe and ntkrnlpa.exe, and the kernel the default boot entry names by
    /// `/KERNEL=` (first) when it names another.
    pub kernels: Vec<KernelReport>,
    /// hal, ntoskrnl, kernel32, ntdll side by side.
    pub versions: Versions,
    /// How it is started.
    pub boot: Boot,
    /// Drive letters.
    pub mounted_devices: Vec<MountedDevice>,
    /// MountedDevices' volume names (`\??\Volume{...}`), which a firmware move converts with
    /// the letters so that each volume keeps its name; not reported (a letter says more).
    #[serde(skip)]
    pub volume_names: Vec<MountedDevice>,
    /// The letter MountedDevices gives the install's own volume.
    pub system_letter: Option<String>,
    /// Storage-relevant services in each control set Select names.
    pub services: Vec<ServiceReport>,
    /// CriticalDeviceDatabase entries in the current control set (NT 5.x to 6.1).
    pub critical_device_database: Option<usize>,
    /// `DriverDatabase` exists at the hive root (8+).
    pub driver_database: bool,
    /// Filters of the storage classes.
    pub class_filters: Vec<ClassFilters>,
    /// Hives.
    pub hives: Vec<HiveReport>,
    /// Red flags, in words.
    pub flags: Vec<String>,
}

/// The partition a boot store names, in words.
pub fn describe(p: &PartitionRef) -> String {
    match p {
        PartitionRef::Mbr { signature, offset } => format!("mbr {signature} at {offset}"),
        PartitionRef::Gpt { disk, partition } => format!("gpt {disk} partition {partition}"),
    }
}
