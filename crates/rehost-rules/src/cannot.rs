//! Why a fix that searches for what it needs (a driver package, a HAL with its kernels, a
//! boot entry to change) finds nothing it can plan: typed reasons, each shown as the
//! sentence the fix's "not fixed" entry gives.

use rehost_formats::inf;
use std::fmt;
use std::path::PathBuf;

/// Why the `--drivers` folder gives no package for a service.
#[derive(Debug)]
pub enum NoPackage {
    /// No driver folder was given.
    NoFolder,
    /// The install's version or architecture is unknown, so INF decorations cannot be read.
    UnknownInstall,
    /// The target names its controller by PCI class code only.
    ByClass {
        /// The controller's name.
        controller: String,
        /// Its class code.
        class: String,
    },
    /// The target gives its controller no PCI ID.
    NoPciId {
        /// The controller's name.
        controller: String,
    },
    /// The folder could not be read.
    Read(rehost_core::Error),
    /// No INF of the folder installs the service for the controller on the install.
    NoneInstalls {
        /// The folder.
        dir: PathBuf,
        /// The service.
        service: String,
        /// The controller's name.
        controller: String,
        /// The install, as INF decorations read it.
        install: Box<inf::Target>,
        /// The packages left out, each with why.
        skipped: Vec<String>,
    },
}

impl fmt::Display for NoPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoPackage::NoFolder => f.write_str("no driver folder was given (--drivers)"),
            NoPackage::UnknownInstall => {
                f.write_str("the install's version or architecture is unknown")
            }
            NoPackage::ByClass { controller, class } => write!(
                f,
                "the target names the {controller} by its class code ({class}), not by a \
                 vendor and device ID, and INF files install drivers by device ID: a target \
                 profile (--profiles) with the controller's PCI ID lets rehost pick the package"
            ),
            NoPackage::NoPciId { controller } => write!(
                f,
                "the {controller} has no PCI ID in the target profile to look up in INF files"
            ),
            NoPackage::Read(e) => write!(f, "{e}"),
            NoPackage::NoneInstalls {
                dir,
                service,
                controller,
                install: t,
                skipped,
            } => {
                write!(
                    f,
                    "no INF below {} installs {service} for the {controller} on {} {}.{} build {}",
                    dir.display(),
                    t.arch,
                    t.major,
                    t.minor,
                    t.build
                )?;
                if !skipped.is_empty() {
                    write!(f, " (left out: {})", skipped.join("; "))?;
                }
                Ok(())
            }
        }
    }
}

/// Why detecthal cannot be set on the boot entry of a Windows Vista x86 install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoDetectHal {
    /// The install is not started from a BCD entry.
    NoBcdEntry,
    /// The BCD entry that starts it was not read.
    EntryNotRead,
    /// The target's HAL is not in System32 for the loader to choose.
    NoHal {
        /// Its path.
        path: String,
    },
    /// The entry's identifier is not a BCD object's GUID.
    NotBcdObject {
        /// The identifier.
        id: String,
    },
}

impl fmt::Display for NoDetectHal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoDetectHal::NoBcdEntry => f.write_str("no BCD entry starts the install"),
            NoDetectHal::EntryNotRead => f.write_str("the BCD entry was not read"),
            NoDetectHal::NoHal { path } => write!(
                f,
                "{path} is not there for the loader to choose (rehost does not take HALs from \
                 the driver store)"
            ),
            NoDetectHal::NotBcdObject { id } => {
                write!(f, "the boot entry {id} is not a BCD object")
            }
        }
    }
}

/// One HAL as a reason names it: its file, description and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalNamed {
    /// Its file (`halaacpi.dll`).
    pub file: String,
    /// What it is.
    pub description: String,
    /// Whether it is an ACPI HAL.
    pub acpi: bool,
}

/// Why the HAL and kernels of an NT 5.x install cannot be set for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoHalSet {
    /// An architecture with a single HAL and kernel (not x86).
    SingleHal {
        /// The architecture.
        arch: String,
    },
    /// The kernel's machine type could not be read.
    UnknownMachine,
    /// The target's HAL is not one rehost knows.
    UnknownHal {
        /// Its name.
        hal: String,
    },
    /// The HAL the boot entry loads is not one rehost knows.
    UnknownLoadedHal,
    /// The HAL loaded, or the one setup recorded, is of the other kind (ACPI or not) than
    /// the target's.
    OtherKind {
        /// Which: "the HAL loaded" or "the HAL setup recorded".
        what: &'static str,
        /// That HAL.
        installed: Box<HalNamed>,
        /// The target's.
        target: Box<HalNamed>,
    },
    /// No kernels are known for the target's HAL.
    NoKernels {
        /// The HAL's file.
        hal: String,
    },
    /// No build of the three files is complete in the install.
    Incomplete {
        /// The HAL, the kernel and the PAE kernel, by file name.
        files: [String; 3],
        /// What was searched and found.
        inventory: String,
    },
    /// The install's own DLLs are of a build none of the complete sets is of.
    OtherBuild {
        /// The DLL whose version was read (kernel32.dll or ntdll.dll).
        by: &'static str,
        /// Its version.
        version: String,
        /// What was searched and found.
        inventory: String,
    },
    /// No boot entry starts the install.
    NoBootEntry,
    /// The install is not started from a boot.ini.
    NotBootIni,
    /// The boot.ini that starts it was not read.
    BootIniNotRead,
    /// `--replace-hal` on an entry that loads other files by `/HAL=` or `/KERNEL=`.
    LoadsOther {
        /// Those files, joined with "and".
        files: String,
    },
}

impl fmt::Display for NoHalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = |acpi: bool| if acpi { "an ACPI" } else { "a non-ACPI" };
        match self {
            NoHalSet::SingleHal { arch } => write!(f, "{arch} NT 5.x has a single HAL and kernel"),
            NoHalSet::UnknownMachine => f.write_str("the kernel's machine type could not be read"),
            NoHalSet::UnknownHal { hal } => {
                write!(f, "the target's HAL {hal} is not one rehost knows")
            }
            NoHalSet::UnknownLoadedHal => {
                f.write_str("the HAL the boot entry loads is not one rehost knows")
            }
            NoHalSet::OtherKind {
                what,
                installed: h,
                target: hal,
            } => write!(
                f,
                "{what} is {} ({}), {} HAL, and the target needs {}, {} HAL: Windows does \
                 not move between ACPI and non-ACPI HALs without setup, as the two enumerate \
                 the machine's devices differently (KB Q246236); reinstall or repair-install \
                 for the target",
                h.file,
                h.description,
                kind(h.acpi),
                hal.file,
                kind(hal.acpi)
            ),
            NoHalSet::NoKernels { hal } => write!(f, "no kernels are known for {hal}"),
            NoHalSet::Incomplete { files, inventory } => write!(
                f,
                "no build of {}, {} and {} is complete in the install ({inventory})",
                files[0], files[1], files[2]
            ),
            NoHalSet::OtherBuild {
                by,
                version,
                inventory,
            } => write!(
                f,
                "{by} is {version}, and no set of that build is in the install ({inventory}): \
                 a HAL and kernels of another build would not match it"
            ),
            NoHalSet::NoBootEntry => f.write_str("no boot entry starts the install"),
            NoHalSet::NotBootIni => f.write_str("the install is not started from a boot.ini"),
            NoHalSet::BootIniNotRead => {
                f.write_str("the boot.ini that starts the install was not read")
            }
            NoHalSet::LoadsOther { files } => write!(
                f,
                "the default boot.ini entry loads {files} by /HAL= or /KERNEL=, not hal.dll and \
                 ntoskrnl.exe: --replace-hal would not change what it loads (fix without it)"
            ),
        }
    }
}

/// Why the boot files (the boot manager and a new store) cannot be rebuilt from the
/// install's own `\Windows\Boot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBootFiles {
    /// The install's `\Windows\Boot` lacks a file the boot needs (bootmgr, bootmgfw.efi).
    Missing {
        /// The volume of the install.
        volume: u32,
        /// The file's path there.
        path: String,
    },
    /// No partition of the disk can be the one the firmware starts (the install's volume is
    /// a logical partition of an MBR disk, and no primary partition is active).
    NoSystemPartition {
        /// The install's volume.
        volume: u32,
    },
    /// A partition has no identity a store can name (no disk signature or GUID).
    NoIdentity {
        /// The volume.
        volume: u32,
    },
    /// The folder holds more than rehost copies.
    TooMuch {
        /// The folder.
        path: String,
        /// What the limit is, in words.
        limit: String,
    },
    /// The GPT disk has no EFI system partition to hold the boot files.
    NoEsp,
    /// The install's partition has no ARC number for a boot.ini entry to name.
    NoArc {
        /// The volume.
        volume: u32,
    },
    /// A loader other than the boot manager is missing (the install's winload, ntldr).
    Loader {
        /// Its path.
        path: String,
    },
    /// No entry of the store starts the install, and `--rebuild-boot` was not given.
    NoEntry,
}

impl fmt::Display for NoBootFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBootFiles::Missing { volume, path } => write!(
                f,
                "the install has no {path} on volume {volume} to rebuild the boot files from \
                 (copy the file from the install's media; on Vista and later, bcdboot on the \
                 running system rebuilds them)"
            ),
            NoBootFiles::NoSystemPartition { volume } => write!(
                f,
                "no partition is active and the install's volume {volume} is a logical \
                 partition, which the BIOS boot code cannot start"
            ),
            NoBootFiles::NoIdentity { volume } => write!(
                f,
                "volume {volume} has no identity a BCD can name (no disk signature or GUID)"
            ),
            NoBootFiles::TooMuch { path, limit } => {
                write!(f, "{path} holds more than rehost copies ({limit})")
            }
            NoBootFiles::Loader { path } => write!(
                f,
                "rehost does not rebuild {path}: it belongs to the install (repair the install \
                 from its media)"
            ),
            NoBootFiles::NoEntry => f.write_str(
                "no entry of the store starts the install: fix --rebuild-boot writes a new \
                 store for it, as bcdboot does (the old store's entries are not kept)",
            ),
            NoBootFiles::NoArc { volume } => write!(
                f,
                "volume {volume} has no ARC partition number for a boot.ini entry to name"
            ),
            NoBootFiles::NoEsp => f.write_str(
                "the GPT disk has no EFI system partition to rebuild the boot files on, and \
                 rehost does not create one here",
            ),
        }
    }
}

/// Why an MBR disk started by BIOS is not converted for a target that starts only by UEFI
/// (GPT, an EFI system partition, the boot files and a UEFI store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoConversion {
    /// The install is not 64-bit x86 (UEFI starts Windows x64 only, on these machines).
    Arch {
        /// The install's architecture, when known.
        arch: Option<String>,
    },
    /// The target's UEFI firmware does not start this Windows version.
    Version {
        /// The install's version, when known.
        version: Option<String>,
        /// The first version the target's UEFI starts.
        first: String,
        /// The target's own words (its profile's `requires.why`), or UEFI's limit.
        why: String,
    },
    /// A partition of the disk is an LDM dynamic disk's.
    DynamicDisk {
        /// The partition.
        volume: u32,
    },
    /// A volume of the disk is BitLocker-encrypted.
    BitLocker {
        /// The volume.
        volume: u32,
    },
    /// The partition table does not leave room for the GPT and the EFI system partition,
    /// and the container cannot grow (why not).
    NoRoom {
        /// The planner's refusal.
        plan: String,
        /// Why the container cannot grow, when growing was the way.
        grow: Option<String>,
    },
    /// The disk's table cannot be converted (the planner's reason).
    Table(String),
    /// The partitions are not numbered 1 to N (logical partitions): the converted table
    /// would number the install's volume otherwise.
    Numbering,
    /// The install has no UEFI loader (`\Windows\system32\winload.efi`).
    NoLoader {
        /// The path looked for.
        path: String,
    },
    /// The boot files for UEFI cannot be made from the install.
    BootFiles(NoBootFiles),
}

impl fmt::Display for NoConversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoConversion::Arch { arch } => write!(
                f,
                "the install is {} Windows, and the target's UEFI starts only 64-bit (x64) \
                 Windows: it stays on a BIOS machine",
                arch.as_deref().unwrap_or("of unknown architecture")
            ),
            NoConversion::Version {
                version,
                first,
                why,
            } => write!(
                f,
                "the install is Windows {}, and the target's UEFI starts Windows {first} and \
                 later ({why})",
                version.as_deref().unwrap_or("of unknown version")
            ),
            NoConversion::DynamicDisk { volume } => write!(
                f,
                "partition {volume} belongs to a dynamic disk (LDM, type 0x42): its volumes \
                 live in the LDM database a GPT would orphan; make the disk basic in Windows \
                 first"
            ),
            NoConversion::BitLocker { volume } => write!(
                f,
                "volume {volume} is BitLocker-encrypted: rehost cannot read or write it, and \
                 a new boot path would make BitLocker ask for its recovery key; decrypt it \
                 (manage-bde -off) first"
            ),
            NoConversion::NoRoom { plan, grow } => match grow {
                Some(g) => write!(
                    f,
                    "no room for the GPT and the EFI system partition ({plan}), and the \
                     container cannot grow: {g}"
                ),
                None => write!(
                    f,
                    "no room for the GPT and the EFI system partition: {plan}"
                ),
            },
            NoConversion::Table(why) => write!(f, "the partition table is not converted: {why}"),
            NoConversion::Numbering => f.write_str(
                "the partitions are not numbered 1 to N (logical partitions): the GPT would \
                 number the install's volume otherwise",
            ),
            NoConversion::NoLoader { path } => write!(
                f,
                "the install has no {path}, the loader UEFI's boot manager starts: repair \
                 the install from its media first"
            ),
            NoConversion::BootFiles(no) => write!(f, "the UEFI boot files: {no}"),
        }
    }
}

/// Why a GPT disk started by UEFI is not converted for a target that starts only by BIOS
/// (MBR, bootmgr and a BIOS store on the install's partition, made active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBiosConversion {
    /// The install is of an architecture a BIOS does not start (ARM64, Itanium).
    Arch {
        /// The install's architecture, when known.
        arch: Option<String>,
    },
    /// A partition of the disk is an LDM dynamic disk's.
    DynamicDisk {
        /// The partition.
        volume: u32,
    },
    /// A volume of the disk is BitLocker-encrypted.
    BitLocker {
        /// The volume.
        volume: u32,
    },
    /// The protective MBR holds no boot code a BIOS can run (why, in words).
    BootCode(String),
    /// The install has no BIOS loader (`\Windows\system32\winload.exe`).
    NoLoader {
        /// The path looked for.
        path: String,
    },
    /// The partition table cannot be converted (the planner's reason).
    Table(String),
    /// The boot files for BIOS cannot be made from the install.
    BootFiles(NoBootFiles),
}

impl fmt::Display for NoBiosConversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBiosConversion::Arch { arch } => write!(
                f,
                "the install is {} Windows, which only UEFI starts: it stays on a UEFI machine",
                arch.as_deref().unwrap_or("of unknown architecture")
            ),
            NoBiosConversion::DynamicDisk { volume } => write!(
                f,
                "partition {volume} belongs to a dynamic disk (LDM): its volumes live in the \
                 LDM database an MBR would orphan; make the disk basic in Windows first"
            ),
            NoBiosConversion::BitLocker { volume } => write!(
                f,
                "volume {volume} is BitLocker-encrypted: rehost cannot read or write it, and \
                 a new boot path would make BitLocker ask for its recovery key; decrypt it \
                 (manage-bde -off) first"
            ),
            NoBiosConversion::BootCode(why) => write!(
                f,
                "the protective MBR holds no boot code a BIOS can run ({why}); rehost does \
                 not write boot code of its own: write Windows' MBR code there first \
                 (bootsect /nt60 SYS /mbr, from Windows or its install media)"
            ),
            NoBiosConversion::NoLoader { path } => write!(
                f,
                "the install has no {path}, the loader the BIOS boot manager starts: repair \
                 the install from its media first"
            ),
            NoBiosConversion::Table(why) => {
                write!(f, "the partition table is not converted: {why}")
            }
            NoBiosConversion::BootFiles(no) => write!(f, "the BIOS boot files: {no}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_sentences_the_fixes_gave() {
        let hal = |file: &str, acpi| HalNamed {
            file: file.into(),
            description: "d".into(),
            acpi,
        };
        let r = NoHalSet::OtherKind {
            what: "the HAL loaded",
            installed: Box::new(hal("hal.dll", false)),
            target: Box::new(hal("halaacpi.dll", true)),
        };
        assert!(r.to_string().starts_with(
            "the HAL loaded is hal.dll (d), a non-ACPI HAL, and the target needs halaacpi.dll, \
             an ACPI HAL: Windows does not move"
        ));
        let r = NoPackage::NoneInstalls {
            dir: "drv".into(),
            service: "viostor".into(),
            controller: "virtio-blk".into(),
            install: Box::new(inf::Target {
                arch: "x86".into(),
                major: 5,
                minor: 1,
                build: 2600,
                product_type: 1,
            }),
            skipped: vec!["a.inf: x".into()],
        };
        assert_eq!(
            r.to_string(),
            "no INF below drv installs viostor for the virtio-blk on x86 5.1 build 2600 \
             (left out: a.inf: x)"
        );
        assert!(matches!(r, NoPackage::NoneInstalls { ref skipped, .. } if skipped.len() == 1));
        assert_eq!(
            NoDetectHal::NotBcdObject { id: "{x}".into() }.to_string(),
            "the boot entry {x} is not a BCD object"
        );
    }
}
