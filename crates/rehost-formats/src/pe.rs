//! PE images (hal.dll, the kernels, kernel32.dll, drivers), read through `goblin`: machine,
//! subsystem, exports, imports, and the version resource.

use rehost_core::error::{Ctx, Result};
use serde::Serialize;

/// Largest PE image parsed (the biggest Windows kernels are around 10 MiB).
pub const MAX_PE: u64 = 64 << 20;

/// What a PE image says about itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeInfo {
    /// "x86", "x64", "arm64", "ia64", "arm" or the machine number in hex.
    pub machine: String,
    /// "native" (drivers, the kernel), "windows-gui", "windows-cui", or the number.
    pub subsystem: String,
    /// Exported names.
    pub exports: Vec<String>,
    /// Imported DLLs.
    pub imports: Vec<String>,
    /// VS_VERSIONINFO, when the image carries one.
    pub version: Option<VersionInfo>,
}

/// The version resource: the fixed numbers and the first string table's fields.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// The fixed FileVersion, "5.2.3790.3959".
    pub file_version: Option<String>,
    /// The fixed ProductVersion.
    pub product_version: Option<String>,
    /// The FileVersion string (may carry a build lab tag).
    pub file_version_string: Option<String>,
    /// OriginalFilename: which variant a renamed file is (halmacpi.dll as hal.dll).
    pub original_filename: Option<String>,
    /// CompanyName.
    pub company_name: Option<String>,
    /// ProductName.
    pub product_name: Option<String>,
}

impl VersionInfo {
    /// The build number: the third part of the fixed FileVersion.
    pub fn build(&self) -> Option<u32> {
        self.file_version
            .as_deref()?
            .split('.')
            .nth(2)?
            .parse()
            .ok()
    }
}

/// A machine name for a COFF machine number.
pub fn machine_name(m: u16) -> String {
    match m {
        0x014c => "x86".into(),
        0x8664 => "x64".into(),
        0xAA64 => "arm64".into(),
        0x0200 => "ia64".into(),
        0x01c0 | 0x01c4 => "arm".into(),
        other => format!("{other:#06x}"),
    }
}

fn subsystem_name(s: u16) -> String {
    match s {
        1 => "native".into(),
        2 => "windows-gui".into(),
        3 => "windows-cui".into(),
        10 => "efi-application".into(),
        11 => "efi-boot-driver".into(),
        12 => "efi-runtime-driver".into(),
        other => other.to_string(),
    }
}

/// Parses a PE image. `path` names it in errors.
pub fn parse(bytes: &[u8], ctx: &Ctx, path: &str) -> Result<PeInfo> {
    let pe = goblin::pe::PE::parse(bytes)
        .map_err(|e| ctx.corrupt_at_path(path, format!("not a readable PE image: {e}")))?;
    let coff = &pe.header.coff_header;
    let subsystem = pe
        .header
        .optional_header
        .map(|o| subsystem_name(o.windows_fields.subsystem))
        .unwrap_or_default();
    let mut exports: Vec<String> = pe
        .exports
        .iter()
        .filter_map(|e| e.name.map(str::to_string))
        .collect();
    exports.sort();
    exports.dedup();
    let mut imports: Vec<String> = pe.libraries.iter().map(|l| l.to_string()).collect();
    imports.sort_by_key(|s| s.to_lowercase());
    imports.dedup();
    let version = pe
        .resource_data
        .as_ref()
        .and_then(|r| r.version_info.as_ref())
        .map(|v| {
            let fixed = v.fixed_info.as_ref().filter(|f| f.is_valid());
            let strings = Some(&v.string_info);
            VersionInfo {
                // goblin 0.10's `file_version()` reads the file *date* fields: use the version
                // fields themselves.
                file_version: fixed.map(|f| {
                    goblin::pe::resource::VersionField::from_ms_ls(
                        f.file_version_ms,
                        f.file_version_ls,
                    )
                    .to_string()
                }),
                product_version: fixed.map(|f| f.product_version().to_string()),
                file_version_string: strings.and_then(|s| s.file_version()),
                original_filename: strings.and_then(|s| s.original_filename()),
                company_name: strings.and_then(|s| s.company_name()),
                product_name: strings.and_then(|s| s.product_name()),
            }
        });
    Ok(PeInfo {
        machine: machine_name(coff.machine),
        subsystem,
        exports,
        imports,
        version,
    })
}
