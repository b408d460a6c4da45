//! The names of a BCD store: well-known object identifiers, object types and element types.
//!
//! Element type names are Microsoft's, from the BCD WMI provider's enumerations
//! (`BcdLibraryElementTypes`, `BcdBootMgrElementTypes`, `BcdOSLoaderElementTypes`,
//! `BcdResumeElementTypes`, `BcdMemDiagElementTypes`, and the `BcdElementType` layout: class
//! in bits 28-31, format in 24-27); the few Windows 8 and later elements those pages do not
//! list (`isolatedcontext`, `allowedinmemorysettings`, `bootmenupolicy` of the loader) are
//! named as bcdedit names them. Identifiers are named as bcdedit shows them (Microsoft,
//! "Boot Options Identifiers"); their values are those Windows' own stores hold (the real
//! stores under `testdata/hives`).

/// `{bootmgr}`, the Windows Boot Manager.
pub const BOOTMGR: &str = super::bcd::BOOTMGR;
/// `{memdiag}`, the Windows Memory Diagnostic.
pub const MEMDIAG: &str = "{b2721d73-1db4-4c62-bf78-c548a880142d}";
/// `{globalsettings}`, inherited by every boot application.
pub const GLOBAL_SETTINGS: &str = "{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}";
/// `{bootloadersettings}`, inherited by every Windows boot loader.
pub const BOOTLOADER_SETTINGS: &str = "{6efb52bf-1766-41db-a6b3-0ee5eff72bd7}";
/// `{resumeloadersettings}`, inherited by every resume application.
pub const RESUME_LOADER_SETTINGS: &str = "{1afa9c49-16ab-4a5c-901b-212802da9460}";
/// `{dbgsettings}`, the debugger settings.
pub const DBG_SETTINGS: &str = "{4636856e-540f-4170-a130-a84776f4c654}";
/// `{emssettings}`, the Emergency Management Services settings.
pub const EMS_SETTINGS: &str = "{0ce4991b-e6b3-4b16-b23c-5e0d9250e5d9}";
/// `{badmemory}`, the RAM defect list.
pub const BAD_MEMORY: &str = "{5189b25c-5558-4bf2-bca4-289b11bd29e2}";
/// `{hypervisorsettings}`, inherited by OS loaders.
pub const HYPERVISOR_SETTINGS: &str = "{7ff607e0-4395-11db-b0de-0800200c9a66}";

/// Object types (`Objects\{id}\Description\Type`).
pub mod object {
    /// The Windows Boot Manager.
    pub const BOOTMGR: u32 = 0x1010_0002;
    /// A Windows boot loader (winload).
    pub const OS_LOADER: u32 = 0x1020_0003;
    /// A resume application (winresume).
    pub const RESUME: u32 = 0x1020_0004;
    /// The memory diagnostic.
    pub const MEMDIAG: u32 = 0x1020_0005;
    /// Settings inheritable by any boot application.
    pub const INHERIT_ANY: u32 = 0x2010_0000;
    /// Settings inheritable by OS loaders.
    pub const INHERIT_OS_LOADER: u32 = 0x2020_0003;
    /// Settings inheritable by resume applications.
    pub const INHERIT_RESUME: u32 = 0x2020_0004;
}

/// `BcdLibraryElementTypes`: elements of any object.
pub mod library {
    /// `BcdLibraryDevice_ApplicationDevice` (device).
    pub const APPLICATION_DEVICE: u32 = 0x1100_0001;
    /// `BcdLibraryString_ApplicationPath` (path).
    pub const APPLICATION_PATH: u32 = 0x1200_0002;
    /// `BcdLibraryString_Description` (description).
    pub const DESCRIPTION: u32 = 0x1200_0004;
    /// `BcdLibraryString_PreferredLocale` (locale).
    pub const PREFERRED_LOCALE: u32 = 0x1200_0005;
    /// `BcdLibraryObjectList_InheritedObjects` (inherit).
    pub const INHERITED_OBJECTS: u32 = 0x1400_0006;
    /// `BcdLibraryObjectList_RecoverySequence` (recoverysequence).
    pub const RECOVERY_SEQUENCE: u32 = 0x1400_0008;
    /// `BcdLibraryBoolean_AutoRecoveryEnabled` (recoveryenabled).
    pub const AUTO_RECOVERY_ENABLED: u32 = 0x1600_0009;
    /// `BcdLibraryBoolean_AllowBadMemoryAccess` (badmemoryaccess).
    pub const ALLOW_BAD_MEMORY_ACCESS: u32 = 0x1600_000B;
    /// `BcdLibraryInteger_DebuggerType` (debugtype).
    pub const DEBUGGER_TYPE: u32 = 0x1500_0011;
    /// `BcdLibraryBoolean_EmsEnabled` (bootems).
    pub const EMS_ENABLED: u32 = 0x1600_0020;
    /// isolatedcontext: the boot application runs in its own context (Windows 8 and later).
    pub const ISOLATED_CONTEXT: u32 = 0x1600_0060;
    /// displaymessageoverride (written with WinRE's registration).
    pub const DISPLAY_MESSAGE_OVERRIDE: u32 = 0x1500_0066;
    /// allowedinmemorysettings: elements the running system may change in memory.
    pub const ALLOWED_IN_MEMORY_SETTINGS: u32 = 0x1700_0077;
}

/// `BcdBootMgrElementTypes`.
pub mod bootmgr {
    /// `BcdBootMgrObjectList_DisplayOrder` (displayorder).
    pub const DISPLAY_ORDER: u32 = 0x2400_0001;
    /// `BcdBootMgrObject_DefaultObject` (default).
    pub const DEFAULT_OBJECT: u32 = 0x2300_0003;
    /// `BcdBootMgrInteger_Timeout` (timeout, seconds).
    pub const TIMEOUT: u32 = 0x2500_0004;
    /// `BcdBootMgrObject_ResumeObject` (resumeobject).
    pub const RESUME_OBJECT: u32 = 0x2300_0006;
    /// `BcdBootMgrObjectList_ToolsDisplayOrder` (toolsdisplayorder).
    pub const TOOLS_DISPLAY_ORDER: u32 = 0x2400_0010;
}

/// `BcdOSLoaderElementTypes`.
pub mod osloader {
    /// `BcdOSLoaderDevice_OSDevice` (osdevice).
    pub const OS_DEVICE: u32 = 0x2100_0001;
    /// `BcdOSLoaderString_SystemRoot` (systemroot).
    pub const SYSTEM_ROOT: u32 = 0x2200_0002;
    /// `BcdOSLoaderObject_AssociatedResumeObject` (resumeobject).
    pub const ASSOCIATED_RESUME_OBJECT: u32 = 0x2300_0003;
    /// `BcdOSLoaderInteger_NxPolicy` (nx): 0 OptIn, 1 OptOut, 2 AlwaysOff, 3 AlwaysOn.
    pub const NX_POLICY: u32 = 0x2500_0020;
    /// bootmenupolicy: 0 Legacy, 1 Standard (Windows 8 and later).
    pub const BOOT_MENU_POLICY: u32 = 0x2500_00C2;
    /// `BcdOSLoaderInteger_HypervisorDebuggerType` (hypervisordebugtype).
    pub const HYPERVISOR_DEBUGGER_TYPE: u32 = 0x2500_00F3;
    /// `BcdOSLoaderInteger_HypervisorDebuggerPortNumber` (hypervisordebugport).
    pub const HYPERVISOR_DEBUGGER_PORT: u32 = 0x2500_00F4;
    /// `BcdOSLoaderInteger_HypervisorDebuggerBaudrate` (hypervisorbaudrate).
    pub const HYPERVISOR_DEBUGGER_BAUDRATE: u32 = 0x2500_00F5;
}

/// `BcdResumeElementTypes`.
pub mod resume {
    /// `Reserved1`, the hibernation file's device (filedevice).
    pub const HIBER_FILE_DEVICE: u32 = 0x2100_0001;
    /// `Reserved2`, the hibernation file's path (filepath).
    pub const HIBER_FILE_PATH: u32 = 0x2200_0002;
    /// `BcdResumeBoolean_DebugOptionEnabled` (debugoptionenabled).
    pub const DEBUG_OPTION_ENABLED: u32 = 0x2600_0006;
    /// `BcdResumeInteger_BootMenuPolicy` (bootmenupolicy).
    pub const BOOT_MENU_POLICY: u32 = 0x2500_0008;
}

/// The format of an element type (bits 24-27): 1 device, 2 string, 3 object, 4 object list,
/// 5 integer, 6 boolean, 7 integer list.
pub fn format(code: u32) -> u32 {
    (code >> 24) & 0xF
}
