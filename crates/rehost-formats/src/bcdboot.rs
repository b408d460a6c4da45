//! The boot configuration Microsoft's bcdboot creates for one Windows install, as objects
//! of a new store ([`super::bcd_build`]): for a machine that lost its System Reserved
//! partition, or a BIOS install moved to UEFI (a new EFI system partition, a new store).
//!
//! What each object holds is what a store bcdboot wrote for Windows 10 holds, less what
//! belongs to the machine rather than to bcdboot:
//! - UEFI: the real store under `testdata/hives/regipy/BCD.xz` (Windows 10 on a GPT disk),
//!   object by object and element by element (`tests/bcd_build.rs` compares them). Not
//!   written: WinRE's objects and the elements that point at them (`recoverysequence`,
//!   `recoveryenabled`, `displaymessageoverride`), which reagentc adds when it registers
//!   WinRE; `{fwbootmgr}` and the firmware application objects, which mirror the firmware's
//!   boot variables and which Windows fills in when it loads the store; `GuidCache`.
//! - BIOS: the same objects, with the differences bcdboot makes for BIOS (the `/f BIOS`
//!   files under `\Boot` of the system partition): `{bootmgr}` has no `path` (the boot
//!   sector loads `\bootmgr`), loaders are `.exe`, `{memdiag}` is `\boot\memtest.exe`, and
//!   the loader and resume objects carry no `isolatedcontext`. Sources: the `bcdedit /enum`
//!   listing of a BIOS install's Windows 10 loader in Microsoft's "Boot Options
//!   Identifiers" (`winload.exe`, its elements), and BCD-SYS (github.com/jpz4085/BCD-SYS),
//!   a re-creation of bcdboot for Linux whose BIOS and UEFI element sets differ as above.
//!
//! Microsoft documents how bcdboot works ("BCDBoot Command-Line Options"): it creates the
//! store from `\Windows\System32\config\BCD-Template` and adds the loader and resume
//! objects of the install; the template's settings objects are those below.

use super::bcd::{Element, Object, PartitionRef, BOOTMGR};
use super::bcd_build::{self, partition, StoreFile};
use super::bcd_ids::{self as ids, bootmgr, library, object, osloader, resume};
use rehost_core::error::Result;
use rehost_core::Ctx;

/// The firmware a store is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// PC BIOS: the store is `\Boot\BCD` of the active partition.
    Bios,
    /// UEFI: the store is `\EFI\Microsoft\Boot\BCD` of the EFI system partition.
    Uefi,
}

impl Firmware {
    /// The store's path on the system partition.
    pub fn store_path(self) -> &'static str {
        match self {
            Firmware::Bios => "\\Boot\\BCD",
            Firmware::Uefi => "\\EFI\\Microsoft\\Boot\\BCD",
        }
    }

    /// The extension of the boot applications (`exe` or `efi`).
    pub fn extension(self) -> &'static str {
        match self {
            Firmware::Bios => "exe",
            Firmware::Uefi => "efi",
        }
    }
}

/// One install and the partitions the new store names.
#[derive(Debug, Clone)]
pub struct Install {
    /// The firmware the machine boots with.
    pub firmware: Firmware,
    /// The system partition: the one holding the store and the boot manager (System
    /// Reserved or the active partition for BIOS, the EFI system partition for UEFI).
    pub system: PartitionRef,
    /// The install's own partition (C:).
    pub os: PartitionRef,
    /// The install's directory on it (`\Windows`).
    pub system_root: String,
    /// The menu entry's text (`Windows 10`, `Windows Server 2019`).
    pub description: String,
    /// The locale of the boot menus (`en-US`).
    pub locale: String,
    /// The OS loader object's identifier (bcdboot makes a new GUID for it).
    pub loader: String,
    /// The resume application's identifier.
    pub resume: String,
}

/// `{bootmgr}`'s `timeout`, in seconds.
pub const TIMEOUT: u64 = 30;
/// `debugtype` Local, as the Windows 10 template sets it.
pub const DEBUGGER_LOCAL: u64 = 4;
/// `nx` OptIn.
pub const NX_OPT_IN: u64 = 0;
/// `bootmenupolicy` Standard.
pub const MENU_STANDARD: u64 = 1;

fn s(v: &str) -> Element {
    Element::String(v.into())
}

fn list(ids: &[&str]) -> Element {
    Element::ObjectList(ids.iter().map(|i| i.to_string()).collect())
}

fn obj(id: &str, kind: u32, mut elements: Vec<(u32, Element)>) -> Object {
    elements.sort_by_key(|(c, _)| *c);
    Object {
        id: id.into(),
        kind,
        elements,
    }
}

/// The objects of the store bcdboot creates for `i`, in the order of their identifiers.
pub fn objects(i: &Install) -> Vec<Object> {
    let uefi = i.firmware == Firmware::Uefi;
    let ext = i.firmware.extension();
    let root = i.system_root.trim_end_matches('\\');
    let common = |path: String, description: &str, inherit: &str| {
        vec![
            (library::APPLICATION_DEVICE, partition(&i.os)),
            (library::APPLICATION_PATH, Element::String(path)),
            (library::DESCRIPTION, s(description)),
            (library::PREFERRED_LOCALE, s(&i.locale)),
            (library::INHERITED_OBJECTS, list(&[inherit])),
            (
                library::ALLOWED_IN_MEMORY_SETTINGS,
                Element::IntegerList(vec![0x1500_0075]),
            ),
        ]
    };
    let mut manager = vec![
        (library::APPLICATION_DEVICE, partition(&i.system)),
        (library::DESCRIPTION, s("Windows Boot Manager")),
        (library::PREFERRED_LOCALE, s(&i.locale)),
        (library::INHERITED_OBJECTS, list(&[ids::GLOBAL_SETTINGS])),
        (bootmgr::DEFAULT_OBJECT, Element::Object(i.loader.clone())),
        (bootmgr::RESUME_OBJECT, Element::Object(i.resume.clone())),
        (bootmgr::DISPLAY_ORDER, list(&[&i.loader])),
        (bootmgr::TOOLS_DISPLAY_ORDER, list(&[ids::MEMDIAG])),
        (bootmgr::TIMEOUT, Element::Integer(TIMEOUT)),
    ];
    let mut loader = common(
        format!("{root}\\system32\\winload.{ext}"),
        &i.description,
        ids::BOOTLOADER_SETTINGS,
    );
    loader.extend([
        (osloader::OS_DEVICE, partition(&i.os)),
        (osloader::SYSTEM_ROOT, s(root)),
        (
            osloader::ASSOCIATED_RESUME_OBJECT,
            Element::Object(i.resume.clone()),
        ),
        (osloader::NX_POLICY, Element::Integer(NX_OPT_IN)),
        (osloader::BOOT_MENU_POLICY, Element::Integer(MENU_STANDARD)),
    ]);
    let mut resumer = common(
        format!("{root}\\system32\\winresume.{ext}"),
        "Windows Resume Application",
        ids::RESUME_LOADER_SETTINGS,
    );
    resumer.extend([
        (resume::HIBER_FILE_DEVICE, partition(&i.os)),
        (resume::HIBER_FILE_PATH, s("\\hiberfil.sys")),
        (resume::BOOT_MENU_POLICY, Element::Integer(MENU_STANDARD)),
        (resume::DEBUG_OPTION_ENABLED, Element::Boolean(false)),
    ]);
    let memtest = if uefi {
        "\\EFI\\Microsoft\\Boot\\memtest.efi"
    } else {
        "\\boot\\memtest.exe"
    };
    if uefi {
        manager.push((
            library::APPLICATION_PATH,
            s("\\EFI\\Microsoft\\Boot\\bootmgfw.efi"),
        ));
        loader.push((library::ISOLATED_CONTEXT, Element::Boolean(true)));
        resumer.push((library::ISOLATED_CONTEXT, Element::Boolean(true)));
    }
    let mut out = vec![
        obj(BOOTMGR, object::BOOTMGR, manager),
        obj(&i.loader, object::OS_LOADER, loader),
        obj(&i.resume, object::RESUME, resumer),
        obj(
            ids::MEMDIAG,
            object::MEMDIAG,
            vec![
                (library::APPLICATION_DEVICE, partition(&i.system)),
                (library::APPLICATION_PATH, s(memtest)),
                (library::DESCRIPTION, s("Windows Memory Diagnostic")),
                (library::PREFERRED_LOCALE, s(&i.locale)),
                (library::INHERITED_OBJECTS, list(&[ids::GLOBAL_SETTINGS])),
                (library::ALLOW_BAD_MEMORY_ACCESS, Element::Boolean(true)),
            ],
        ),
        obj(
            ids::GLOBAL_SETTINGS,
            object::INHERIT_ANY,
            vec![(
                library::INHERITED_OBJECTS,
                list(&[ids::DBG_SETTINGS, ids::EMS_SETTINGS, ids::BAD_MEMORY]),
            )],
        ),
        obj(
            ids::DBG_SETTINGS,
            object::INHERIT_ANY,
            vec![(library::DEBUGGER_TYPE, Element::Integer(DEBUGGER_LOCAL))],
        ),
        obj(
            ids::EMS_SETTINGS,
            object::INHERIT_ANY,
            vec![(library::EMS_ENABLED, Element::Boolean(false))],
        ),
        obj(ids::BAD_MEMORY, object::INHERIT_ANY, Vec::new()),
        obj(
            ids::BOOTLOADER_SETTINGS,
            object::INHERIT_OS_LOADER,
            vec![(
                library::INHERITED_OBJECTS,
                list(&[ids::GLOBAL_SETTINGS, ids::HYPERVISOR_SETTINGS]),
            )],
        ),
        obj(
            ids::HYPERVISOR_SETTINGS,
            object::INHERIT_OS_LOADER,
            vec![
                (osloader::HYPERVISOR_DEBUGGER_TYPE, Element::Integer(0)),
                (osloader::HYPERVISOR_DEBUGGER_PORT, Element::Integer(1)),
                (
                    osloader::HYPERVISOR_DEBUGGER_BAUDRATE,
                    Element::Integer(115_200),
                ),
            ],
        ),
        obj(
            ids::RESUME_LOADER_SETTINGS,
            object::INHERIT_RESUME,
            vec![(library::INHERITED_OBJECTS, list(&[ids::GLOBAL_SETTINGS]))],
        ),
    ];
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The store file bcdboot writes for `i`, stamped `timestamp` (a FILETIME). Refused: a
/// loader or resume identifier that is no GUID, or the same for both, and a partition
/// identity that does not parse.
pub fn store(i: &Install, timestamp: u64, ctx: &Ctx) -> Result<Vec<u8>> {
    store_with(i, true, timestamp, ctx)
}

/// [`store`], with the memory tester's entry (`{memdiag}` and the boot manager's tools
/// menu naming it) only when `memory_tester` says the system partition gets the tester
/// (bcdboot adds it when the install's `\Windows\Boot` holds `memtest.exe` / `.efi`).
pub fn store_with(i: &Install, memory_tester: bool, timestamp: u64, ctx: &Ctx) -> Result<Vec<u8>> {
    let (loader, resume) = (
        bcd_build::identifier(&i.loader),
        bcd_build::identifier(&i.resume),
    );
    let (Some(loader), Some(resume)) = (loader, resume) else {
        return Err(ctx.invalid("the loader and resume identifiers must be GUIDs"));
    };
    let taken = [
        BOOTMGR,
        ids::MEMDIAG,
        ids::GLOBAL_SETTINGS,
        ids::BOOTLOADER_SETTINGS,
        ids::RESUME_LOADER_SETTINGS,
        ids::DBG_SETTINGS,
        ids::EMS_SETTINGS,
        ids::BAD_MEMORY,
        ids::HYPERVISOR_SETTINGS,
    ];
    if loader == resume || taken.contains(&loader.as_str()) || taken.contains(&resume.as_str()) {
        return Err(ctx.invalid(
            "the loader and resume objects need identifiers of their own, not well-known ones",
        ));
    }
    let i = Install {
        loader,
        resume,
        ..i.clone()
    };
    let file = StoreFile {
        path: i.firmware.store_path().into(),
        timestamp,
    };
    let mut all = objects(&i);
    if !memory_tester {
        all.retain(|o| o.id != ids::MEMDIAG);
        for o in &mut all {
            o.elements
                .retain(|(c, _)| *c != bootmgr::TOOLS_DISPLAY_ORDER);
        }
    }
    bcd_build::write(&all, &file, ctx)
}
