//! The windows layer: every Windows install on an image and what decides whether it boots.
//!
//! [`inspect`] opens an image read-only, reads its partition table and file systems, finds
//! the boot stores (boot.ini, BCD on a system partition or an ESP) and the installs (the
//! usual system roots and those the boot stores name), and for each install reports its
//! identity, HAL and kernels, file versions, drive letters, storage services, hives and
//! volume state ([`report`]). A part that cannot be read becomes an entry of `errors`; the
//! rest is still reported.
//!
//! [`open`] does the same and keeps what it opened (the disk, the file systems, each
//! install's SYSTEM and SOFTWARE hives, replayed), for layers above that look further
//! (the boot-readiness rules).
//!
//! ```no_run
//! let report = rehost_windows::inspect("server.vhdx".as_ref())?;
//! for i in &report.installs {
//!     println!("volume {} {}: {:?}", i.volume, i.system_root, i.product_name);
//! }
//! # Ok::<(), rehost_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod boot;
pub mod devices;
pub mod drivers;
pub mod hal;
pub mod halsource;
pub mod hive_edit;
pub mod install;
pub mod knowledge;
pub mod register;
pub mod registry;
pub mod report;
pub mod scene;

use rehost_core::error::{Ctx, Layer, Result};
use rehost_disk::Disk;
use rehost_image::{Facts, Image};
use rehost_regf::hive::Hive;
use rehost_volume::Content;
use report::{BootLink, ImageReport, Install, VolumeReport};
use scene::Scene;
use std::path::Path;

/// An inspected image with what was opened to inspect it.
pub struct Opened {
    /// What inspect reports.
    pub report: ImageReport,
    /// The volumes and their file systems.
    pub scene: Scene,
    /// The hives of each install, in the order of `report.installs`.
    pub hives: Vec<InstallHives>,
    /// The disk, for its counters and raw reads.
    pub disk: Disk,
}

/// The hives of one install, as inspect read them (dirty ones replayed in memory).
pub struct InstallHives {
    /// SYSTEM.
    pub system: Hive,
    /// SOFTWARE, when readable.
    pub software: Option<Hive>,
}

/// Inspects the image at `path`, read-only.
pub fn inspect(path: &Path) -> Result<ImageReport> {
    Ok(open(path)?.report)
}

/// Opens and inspects the image at `path`, read-only, keeping what was opened.
pub fn open(path: &Path) -> Result<Opened> {
    open_image(&Image::open(path)?)
}

/// Inspects an image session as it stands (for a staged image, with every write staged so
/// far): its layout as the session read it, each file system as the session holds it.
pub fn open_image(image: &Image) -> Result<Opened> {
    let started = std::time::Instant::now();
    let name = image.name().to_string();
    let ctx = Ctx::new(name.clone(), Layer::Windows);
    let layout = image.staged_layout();
    let d = image.disk();
    let mut errors: Vec<String> = layout.errors.clone();
    let mut volumes = Vec::new();
    let mut fss = Vec::new();
    for v in &layout.volumes {
        let mut vr = VolumeReport {
            index: v.index,
            offset: v.offset,
            size: v.size,
            fs: serde_json::to_value(v.content)
                .ok()
                .and_then(|j| j.as_str().map(str::to_string))
                .unwrap_or_default(),
            encrypted: v.content == Content::Bitlocker,
            bootable: v.bootable,
            partition_guid: v.partition_guid.clone(),
            label: None,
            dirty: None,
            logfile_clean: None,
            hibernated: None,
            shadow_copies: None,
        };
        let readable = v.content.is_readable();
        let fs = if readable {
            match image.fs(v.index) {
                Ok(fs) => Some(fs),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        if let Some(fs) = &fs {
            match fs.facts() {
                Ok(Facts::Ntfs(n)) => {
                    vr.label = n.label.clone();
                    vr.dirty = Some(n.dirty);
                    vr.logfile_clean = Some(n.logfile.clean);
                    vr.hibernated = Some(n.hibernation.as_ref().is_some_and(|h| h.active));
                    vr.shadow_copies = n.shadow_copies;
                }
                Ok(Facts::Fat { label, .. }) => vr.label = Some(label),
                Err(e) => errors.push(e.to_string()),
            }
        }
        volumes.push(vr);
        fss.push(fs);
    }
    let scene = Scene { ctx, layout, fss };
    let boot_stores = boot::stores(&scene, &mut errors);
    let mut installs = Vec::new();
    let mut hives = Vec::new();
    for (volume, root) in install::candidates(&scene, &boot_stores, &mut errors) {
        match inspect_install(&scene, volume, &root, &boot_stores, &mut errors) {
            Ok((i, h)) => {
                installs.push(i);
                hives.push(h);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    for i in &mut installs {
        flag(i, &volumes);
    }
    let info = d.info();
    let report = ImageReport {
        image: name,
        format: info.format,
        subformat: info.subformat,
        virtual_size: info.virtual_size,
        partitioning: scene.layout.partitioning,
        disk_signature: scene.layout.mbr_signature.clone(),
        disk_guid: scene.layout.disk_guid.clone(),
        volumes,
        boot_stores,
        installs,
        errors,
        bytes_read: d.stats().bytes(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    Ok(Opened {
        report,
        scene,
        hives,
        disk: d,
    })
}

fn inspect_install(
    scene: &Scene,
    volume: u32,
    root: &str,
    stores: &[report::BootStore],
    errors: &mut Vec<String>,
) -> Result<(Install, InstallHives)> {
    let mut i = Install {
        volume,
        system_root: root.to_string(),
        ..Default::default()
    };
    let mut system = None;
    let mut software = None;
    for name in install::HIVES {
        let Some((hive, rep)) = install::read_hive(scene, volume, root, name) else {
            continue;
        };
        match hive {
            Ok(h) if name == "SYSTEM" => system = Some(h),
            Ok(h) if name == "SOFTWARE" => software = Some(h),
            Ok(_) => {}
            Err(e) => errors.push(e.to_string()),
        }
        i.hives.push(rep);
    }
    let system = system.ok_or_else(|| {
        scene.ctx.corrupt_at_path(
            &format!("{root}\\System32\\config\\SYSTEM"),
            "the SYSTEM hive is unreadable",
        )
    })?;
    i.control_sets = install::control_sets(&system)?;
    let cs = i.control_sets.current.or(i.control_sets.default);
    install::identity(&mut i, software.as_ref(), &system, cs)?;
    // The entries that start the install, first: the HAL and kernel are those its default
    // entry loads.
    let mut default: Option<(&report::BootEntry, &str)> = None;
    let mut first: Option<(&report::BootEntry, &str)> = None;
    for s in stores {
        for e in &s.entries {
            let here = e.os_device.as_ref().and_then(|d| d.volume) == Some(volume)
                && e.system_root
                    .as_deref()
                    .is_some_and(|r| r.trim_end_matches('\\').eq_ignore_ascii_case(root));
            if here {
                i.boot.entries.push(BootLink {
                    store: s.kind.clone(),
                    store_volume: s.volume,
                    entry: e.id.clone(),
                    default: e.default,
                });
                first = first.or(Some((e, s.kind.as_str())));
                if e.default && default.is_none() {
                    default = Some((e, s.kind.as_str()));
                }
            }
        }
    }
    hal::analyse(scene, &mut i, &system, cs, default.or(first), errors);
    devices::mounted(scene, &mut i, &system)?;
    devices::services(scene, &mut i, &system)?;
    i.boot.default_entry = i.boot.entries.iter().find(|b| b.default).cloned();
    i.boot.system_volume = i
        .boot
        .default_entry
        .as_ref()
        .or(i.boot.entries.first())
        .map(|b| b.store_volume);
    Ok((i, InstallHives { system, software }))
}

/// Red flags a person should see at a glance.
fn flag(i: &mut Install, volumes: &[VolumeReport]) {
    let mut f = Vec::new();
    for h in i.hives.iter().filter(|h| h.dirty) {
        match (&h.replayed, &h.dirty_reason) {
            (Some(r), _) => f.push(format!(
                "hive {} is dirty: {r}, in memory (the file is unchanged)",
                h.name
            )),
            (None, Some(why)) => f.push(format!(
                "hive {} is dirty and was read as it stands: {why}",
                h.name
            )),
            (None, None) => f.push(format!("hive {} is dirty", h.name)),
        }
    }
    if i.hal.agrees == Some(false) {
        f.push(format!(
            "{} is {} but setup recorded {}",
            i.hal.file,
            i.hal.original_filename.as_deref().unwrap_or("?"),
            i.hal.hardware_id.as_deref().unwrap_or("?")
        ));
    }
    for k in i.kernels.iter().filter(|k| k.matches_hal == Some(false)) {
        f.push(format!(
            "{} is a {} kernel but the HAL needs {}",
            k.file,
            k.processors.as_deref().unwrap_or("?"),
            i.hal.processors.as_deref().unwrap_or("?")
        ));
    }
    if let Some(d) = &i.versions.detail {
        f.push(format!("version skew: {d}"));
    }
    if i.system_letter.is_none() {
        f.push("no drive letter in MountedDevices names the install's volume".into());
    }
    if i.boot.entries.is_empty() {
        f.push("no boot entry on this image starts this install".into());
    }
    for s in i
        .services
        .iter()
        .filter(|s| s.start == Some(0) && !s.file_present)
    {
        f.push(format!(
            "boot-start service {} (control set {}) has no driver file",
            s.name, s.control_set
        ));
    }
    if let Some(v) = volumes.iter().find(|v| v.index == i.volume) {
        if v.hibernated == Some(true) {
            f.push("the volume holds an active hibernation image".into());
        }
        if v.dirty == Some(true) {
            f.push("the volume is marked dirty".into());
        }
        if v.logfile_clean == Some(false) {
            f.push("the volume's $LogFile would be replayed by Windows".into());
        }
        if let Some(s) = v.shadow_copies.as_ref().filter(|s| s.any()) {
            f.push(format!(
                "the volume has {} shadow cop{}{}: a write in place leaves {} stale",
                s.count(),
                if s.count() == 1 { "y" } else { "ies" },
                if s.damaged.is_some() {
                    " (its catalog damaged)"
                } else {
                    ""
                },
                if s.count() == 1 { "it" } else { "them" }
            ));
        }
    }
    i.flags = f;
}
