//! The boot files a rebuild copies, by firmware: the rows of `boot_files` in
//! `profiles/boot.toml` (which file, from where below the install, to where on the
//! partition the firmware starts), read by the bcdboot-like rebuild and by its Windows
//! 2000 / XP / Server 2003 counterpart alike.

use serde::Deserialize;
use std::sync::OnceLock;

/// One row of `boot_files` in `profiles/boot.toml`.
#[derive(Deserialize)]
pub(super) struct BootFile {
    pub(super) firmware: String,
    /// Below the install's `\Windows\Boot`, or below what `base` names.
    pub(super) from: String,
    /// `system-root` (the install's `\WINDOWS`) or `volume` (its volume's root).
    #[serde(default)]
    pub(super) base: Option<String>,
    pub(super) to: String,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default)]
    pub(super) dir: bool,
    #[serde(default)]
    pub(super) locales: bool,
    #[serde(default)]
    pub(super) memory_tester: bool,
}

#[derive(Deserialize)]
struct BootFiles {
    boot_files: Vec<BootFile>,
}

/// The rows of `boot_files` in `profiles/boot.toml`.
pub(super) fn rows() -> &'static [BootFile] {
    static D: OnceLock<BootFiles> = OnceLock::new();
    &D.get_or_init(|| {
        toml::from_str(include_str!("../../../../profiles/boot.toml"))
            .expect("profiles/boot.toml parses (a unit test checks it)")
    })
    .boot_files
}
