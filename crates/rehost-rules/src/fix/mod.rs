//! The fixes: each rule's fix, beside its check in the rule's own file, turns that rule's
//! fixable findings into changes ([`Change`]): registry edits as .reg operations, files put
//! or renamed on a volume, bytes written at a disk offset. [`run::fix`] plans every rule's
//! changes for an install and a target, applies them into the image's staging overlay
//! ([`apply`]), checks the staged image again, and commits only when the install then boots
//! on the target (or `--force` says to).

pub mod apply;
pub mod run;
pub mod settle;

use super::finding::Finding;
use super::subject::Subject;
use super::target::Target;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;
use serde::Serialize;
use std::path::PathBuf;

/// What the user asked of the fixes.
#[derive(Debug, Clone, Default)]
pub struct FixOptions {
    /// A folder of driver packages to inject from (a virtio-win tree, a vendor's folder).
    pub drivers: Option<PathBuf>,
    /// Replace hal.dll and the kernels in place (keeping `*.rehost-orig`) instead of adding
    /// a boot.ini entry that loads the new ones by `/HAL=` and `/KERNEL=`.
    pub replace_hal: bool,
    /// Also set CrashControl AutoReboot=0, so that a STOP screen stays visible.
    pub show_stop_screen: bool,
    /// Only these rules' fixes run (empty: all).
    pub only: Vec<String>,
    /// These rules' fixes do not run.
    pub skip: Vec<String>,
    /// Edit a dirty hive whose logs are missing or unusable as its primary file stands,
    /// and write it back consistent (what the logs held is lost; the report says so).
    pub accept_dirty_hive: bool,
    /// Write a volume that holds an active hibernation image, emptying `hiberfil.sys` (as
    /// ntfs-3g's `remove_hiberfile` deletes it): the hibernated session is lost, and
    /// Windows starts afresh on the new machine.
    pub discard_hibernation: bool,
    /// Rebuild the boot files (the boot manager and a new store, as bcdboot makes them from
    /// the install's own `\Windows\Boot`) where a store exists but does not start the
    /// install (its devices, its loaders, no entry for it), instead of editing it: the old
    /// store's other entries are not kept. Where there is no store at all, fix rebuilds the
    /// boot files without being asked.
    pub rebuild_boot: bool,
    /// Write in place into a volume that has Volume Shadow Copy snapshots (which the image
    /// session otherwise refuses); its snapshots become stale, and the report says so.
    pub allow_shadow_copies: bool,
    /// The format of the new image a fix into an output writes (`None`: the one the
    /// output's extension names, or the source's).
    pub output_format: Option<rehost_disk::NewFormat>,
    /// The adapter a new VMDK written by a fix into an output names (`None`: the source
    /// VMDK's, else IDE).
    pub vmdk_adapter: Option<rehost_disk::VmdkAdapter>,
}

impl FixOptions {
    /// Whether the fix of `rule` runs.
    pub fn runs(&self, rule: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|r| r == rule))
            && !self.skip.iter().any(|r| r == rule)
    }
}

/// One change to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// .reg operations on a hive: `SYSTEM`, `SOFTWARE` (the install's) or `BCD` (the
    /// store its boot entry is in); keys named by the hive's mount point
    /// (`HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\x`).
    Registry {
        /// The hive's file name.
        hive: String,
        /// For a boot store (BCD): the volume of the store the change is for, where an image
        /// has several (a BIOS and a UEFI one); `None` for an install's own hives.
        store: Option<u32>,
        /// The operations, in order.
        ops: Vec<Op>,
    },
    /// A file created or replaced on a volume.
    Put {
        /// The volume's number.
        volume: u32,
        /// The path there.
        path: String,
        /// Its new bytes.
        bytes: Vec<u8>,
    },
    /// A file renamed or moved on a volume.
    Rename {
        /// The volume's number.
        volume: u32,
        /// The path now.
        from: String,
        /// The new path.
        to: String,
    },
    /// An edit of a boot.ini (the edits of every rule apply in order to the file as the
    /// last one left it).
    BootIni {
        /// The volume holding it.
        volume: u32,
        /// Its path (`\boot.ini`).
        path: String,
        /// The edit.
        edit: rehost_formats::bootini::edit::Edit,
    },
    /// The MBR's active flag moved to a primary partition (the status bytes of sector 0).
    Active {
        /// The volume made active.
        volume: u32,
    },
    /// The partition table rewritten: an MBR disk converted to GPT, its EFI system
    /// partition formatted (applied before every other change, which then sees the new
    /// table: a file put on the ESP names its new volume number).
    Gpt(Box<Conversion>),
    /// The partition table rewritten: a GPT disk converted to MBR (applied first, like
    /// [`Change::Gpt`]; every carried partition keeps its number).
    Mbr(Box<ToMbr>),
    /// Bytes written at an offset of the disk (a boot sector field).
    Bytes {
        /// Offset on the virtual disk.
        offset: u64,
        /// The new bytes.
        bytes: Vec<u8>,
        /// What they are, for the report.
        what: String,
    },
}

impl Change {
    /// .reg operations on the install's SYSTEM hive.
    pub fn system(ops: Vec<Op>) -> Change {
        Change::Registry {
            hive: "SYSTEM".into(),
            store: None,
            ops,
        }
    }
}

/// An MBR disk converted to GPT: what [`Change::Gpt`] stages, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Bytes added at the disk's end first (0: none).
    pub grow_by: u64,
    /// The protective MBR, the primary header and array, the backup array and header:
    /// (disk offset, bytes), each outside every volume.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// The EFI system partition's byte offset and length, formatted FAT32 there.
    pub esp_offset: u64,
    /// Its length in bytes.
    pub esp_len: u64,
    /// The disk's logical sector size.
    pub sector_size: u32,
    /// The ESP's volume serial number.
    pub volume_id: u32,
    /// The volume number the ESP has in the new table.
    pub esp_volume: u32,
    /// Each volume of the old table that keeps its offset: (its number in the new table,
    /// its byte offset), read back after the write.
    pub kept: Vec<(u32, u64)>,
}

/// A GPT disk converted to MBR: what [`Change::Mbr`] stages, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToMbr {
    /// The new sector 0, then the GPT's headers and arrays zeroed: (disk offset, bytes),
    /// each outside every volume.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// The new disk signature, as 8 hex digits.
    pub signature: String,
    /// The volume made active.
    pub active: u32,
    /// Each volume carried over: (its number, its byte offset), read back after the write.
    pub kept: Vec<(u32, u64)>,
}

/// A change and the rule that planned it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The rule's id.
    pub rule: &'static str,
    /// Why, in words (which finding it repairs).
    pub why: String,
    /// The change.
    pub change: Change,
}

/// Everything planned for one install on one target.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The changes, in the order they are applied.
    pub changes: Vec<Planned>,
    /// Fixable findings a fix could not repair here, and why (no driver in `--drivers`,
    /// no HAL in the install's cabinets, ...).
    pub not_fixed: Vec<NotFixed>,
}

/// A finding left as it was, and why; or a part of a repair left undone that does not
/// keep the finding from being repaired (`partial`).
#[derive(Debug, Clone, Serialize)]
pub struct NotFixed {
    /// The rule.
    pub rule: String,
    /// Why not.
    pub why: String,
    /// The finding is repaired all the same; only this part of the repair was not done.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl Plan {
    /// Adds a change planned by `rule`.
    pub fn add(&mut self, rule: &'static str, why: impl Into<String>, change: Change) {
        self.changes.push(Planned {
            rule,
            why: why.into(),
            change,
        });
    }

    /// Adds, for `rule`, one change that disables (Start 4) each service `findings` name
    /// in its control set; the keys stay. Returns the findings it took, one per service
    /// and control set (those without both are passed over).
    pub fn disable_services<'a>(
        &mut self,
        rule: &'static str,
        s: &Subject,
        findings: &[&'a Finding],
    ) -> Vec<&'a Finding> {
        let mut ops = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut taken = Vec::new();
        for f in findings {
            let (Some(cs), Some(svc)) = (f.control_set, &f.service) else {
                continue;
            };
            let name = format!("{svc} in {}", s.cs_key(cs));
            if names.contains(&name) {
                continue;
            }
            ops.extend(reg::start(&s.cs_key(cs), svc, 4));
            names.push(name);
            taken.push(*f);
        }
        if !ops.is_empty() {
            self.add(
                rule,
                format!("disable {}", names.join(", ")),
                Change::system(ops),
            );
        }
        taken
    }

    /// Records that `rule` could not fix something, and why.
    pub fn cannot(&mut self, rule: &str, why: impl Into<String>) {
        self.not_fixed.push(NotFixed {
            rule: rule.to_string(),
            why: why.into(),
            partial: false,
        });
    }

    /// Records that `rule` left a part of its repair undone that does not keep the finding
    /// from being repaired.
    pub fn partly(&mut self, rule: &str, why: impl Into<String>) {
        self.not_fixed.push(NotFixed {
            rule: rule.to_string(),
            why: why.into(),
            partial: true,
        });
    }
}

/// A rule's fix: given the install, the target, the rule's fixable findings and the
/// options, it adds changes (or says why it cannot) to the plan.
pub type FixFn = fn(&Subject, &Target, &[&Finding], &FixOptions, &mut Plan) -> Result<()>;

/// Helpers for building registry operations.
pub mod reg {
    use rehost_regf::regtext::Op;

    /// `HKEY_LOCAL_MACHINE\SYSTEM\<key>`.
    pub fn system(key: &str) -> String {
        format!(
            "HKEY_LOCAL_MACHINE\\SYSTEM\\{}",
            key.trim_start_matches('\\')
        )
    }

    /// Data of a REG_SZ / REG_EXPAND_SZ.
    pub fn sz(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    /// Data of a REG_MULTI_SZ.
    pub fn multi_sz(items: &[&str]) -> Vec<u8> {
        let mut d: Vec<u8> = items.iter().flat_map(|s| sz(s)).collect();
        d.extend([0, 0]);
        d
    }

    /// The service's key in control set `cs` (`ControlSetNNN\Services\<service>`) and
    /// its Start set to `start`.
    pub fn start(cs_key: &str, service: &str, start: u32) -> [Op; 2] {
        [
            Op::Key(system(&format!("{cs_key}\\Services\\{service}"))),
            dword("Start", start),
        ]
    }

    /// Sets a REG_DWORD.
    pub fn dword(name: &str, v: u32) -> Op {
        Op::Set {
            name: name.to_string(),
            kind: 4,
            data: v.to_le_bytes().to_vec(),
        }
    }

    /// Sets a value of any type.
    pub fn set(name: &str, kind: u32, data: Vec<u8>) -> Op {
        Op::Set {
            name: name.to_string(),
            kind,
            data,
        }
    }
}
