//! The repair the three HAL rules' fixes share on NT 5.x (`hal-kernel-pair`, `hal-target`,
//! `version-skew`): the HAL the target needs and the two kernels of its processor count, of
//! one build (kernel32.dll's), taken from the install's own driver cache, service pack
//! files or System32 ([`halsource`]).
//!
//! By default, reversibly: the three files go into System32 under their own names
//! (`halmacpi.dll`, `ntkrnlmp.exe`, `ntkrpamp.exe`) and a boot.ini entry that loads them by
//! `/HAL=` and `/KERNEL=` (the PAE kernel when the loader will boot PAE) becomes the
//! default, the old entry kept below it. With `--replace-hal`: they replace hal.dll,
//! ntoskrnl.exe and ntkrnlpa.exe (each kept as `*.rehost-orig`) and the HAL's record in
//! `Enum\Root\ACPI_HAL\0000` and its class instance name the new HAL, in every control set
//! `Select` names. The first of the three rules to run plans it; the others' findings are
//! repaired by the same changes, and say so.

use super::cannot::{HalNamed, NoHalSet};
use super::finding::Finding;
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use rehost_core::error::Result;
use rehost_formats::bootini::edit::Edit;
use rehost_regf::regtext::Op;
use rehost_windows::halsource::{self, Candidate};
use rehost_windows::knowledge::{Hal, Knowledge};

/// The rules whose fixes this is.
pub const RULES: [&str; 3] = ["hal-kernel-pair", "hal-target", "version-skew"];

/// The class of the computer device (the HAL's class instance lives under it).
const HAL_CLASS: &str = "{4D36E966-E325-11CE-BFC1-08002BE10318}";

/// Plans the HAL set for `rule`, whose `findings` it repairs.
pub fn plan(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
    rule: &'static str,
) -> Result<()> {
    let what: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    let what = what.join("; ");
    if !s.nt5() {
        plan.cannot(
            rule,
            format!("{what}: rehost installs HALs and kernels on NT 5.x only"),
        );
        return Ok(());
    }
    // Planned already by another of the three rules: the same changes repair these too.
    if let Some(first) = plan.changes.iter().position(|p| RULES.contains(&p.rule)) {
        let by = plan.changes[first].rule;
        for p in plan.changes.iter_mut().filter(|p| p.rule == by) {
            p.why.push_str(&format!(". Also repairs {rule}: {what}"));
        }
        return Ok(());
    }
    if let Some(n) = plan
        .not_fixed
        .iter()
        .find(|n| RULES.contains(&n.rule.as_str()))
    {
        let why = format!(
            "{what}: only the HAL set repairs it, and {} could not plan that (see there)",
            n.rule
        );
        plan.cannot(rule, why);
        return Ok(());
    }
    match changes(s, t, o) {
        Ok(list) if list.is_empty() => plan.cannot(
            rule,
            format!("{what}: the HAL and kernels the target needs are in place already"),
        ),
        Ok(list) => {
            for (why, change) in list {
                plan.add(rule, format!("{why}. Repairs {rule}: {what}"), change);
            }
        }
        Err(why) => plan.cannot(rule, format!("{what}: {why}")),
    }
    Ok(())
}

/// The changes, each with why, or why there can be none.
fn changes(
    s: &Subject,
    t: &Target,
    o: &FixOptions,
) -> std::result::Result<Vec<(String, Change)>, NoHalSet> {
    match s.install.arch.as_deref() {
        Some("x86") => {}
        Some(arch) => {
            return Err(NoHalSet::SingleHal {
                arch: arch.to_string(),
            })
        }
        None => return Err(NoHalSet::UnknownMachine),
    }
    let k = Knowledge::builtin();
    let hal = k
        .hals_named(&t.hal)
        .into_iter()
        .find(|h| !h.modern)
        .ok_or_else(|| NoHalSet::UnknownHal { hal: t.hal.clone() })?;
    same_kind(s, hal)?;
    let (kernel, kernel_pae) = halsource::kernels_for(hal).ok_or_else(|| NoHalSet::NoKernels {
        hal: hal.file.clone(),
    })?;
    let (volume, root) = (s.install.volume, s.install.system_root.as_str());
    let cache = s.software.and_then(halsource::driver_cache_path);
    let names = [hal.file.as_str(), &kernel.file, &kernel_pae.file];
    let found = halsource::find(s.scene, volume, root, cache.as_deref(), &names);
    let v = &s.install.versions;
    let (wanted, wanted_by) = match (&v.kernel32, &v.ntdll) {
        (Some(k), _) => (Some(k.as_str()), "kernel32.dll"),
        (None, Some(n)) => (Some(n.as_str()), "ntdll.dll"),
        (None, None) => (None, ""),
    };
    let versions = |name: &str| {
        let mut l: Vec<&str> = Vec::new();
        for c in found.candidates.iter() {
            if c.name.eq_ignore_ascii_case(name) && !l.contains(&c.version.as_str()) {
                l.push(&c.version);
            }
        }
        if l.is_empty() {
            "none".to_string()
        } else {
            l.join(", ")
        }
    };
    let inventory = || {
        let mut t = format!(
            "searched {}; {} found: {}; {}: {}; {}: {}",
            found.searched.join(", "),
            hal.file,
            versions(&hal.file),
            kernel.file,
            versions(&kernel.file),
            kernel_pae.file,
            versions(&kernel_pae.file)
        );
        if !found.errors.is_empty() {
            t.push_str(&format!(" ({})", found.errors.join("; ")));
        }
        t
    };
    let set = halsource::choose(&found, &hal.file, &kernel.file, &kernel_pae.file, wanted)
        .ok_or_else(|| NoHalSet::Incomplete {
            files: [
                hal.file.clone(),
                kernel.file.clone(),
                kernel_pae.file.clone(),
            ],
            inventory: inventory(),
        })?;
    if let (Some(w), false) = (wanted, set.matches_kernel32) {
        return Err(NoHalSet::OtherBuild {
            by: wanted_by,
            version: w.to_string(),
            inventory: inventory(),
        });
    }
    let entry = s.default_entry().ok_or(NoHalSet::NoBootEntry)?;
    let link = s
        .install
        .boot
        .default_entry
        .as_ref()
        .or(s.install.boot.entries.first())
        .filter(|l| l.store == "boot.ini")
        .ok_or(NoHalSet::NotBootIni)?;
    let store = s
        .image
        .boot_stores
        .iter()
        .find(|b| b.kind == "boot.ini" && b.volume == link.store_volume)
        .ok_or(NoHalSet::BootIniNotRead)?;
    let pae = halsource::boots_pae(&set.kernel.version, &entry.switches);
    let sys32 = format!("{root}\\System32");
    let mut out = Vec::new();
    let from = |c: &Candidate| format!("{} {} from {}", c.name, c.version, c.source);
    if o.replace_hal {
        let loads_other = entry.hal.is_some() || entry.kernel.is_some();
        if loads_other {
            return Err(NoHalSet::LoadsOther {
                files: [entry.hal.as_deref(), entry.kernel.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" and "),
            });
        }
        for (installed, c) in [
            ("hal.dll", &set.hal),
            ("ntoskrnl.exe", &set.kernel),
            ("ntkrnlpa.exe", &set.kernel_pae),
        ] {
            let why = format!("{} as {installed}", from(c));
            put(s, &sys32, installed, c, why, &mut out);
        }
        out.extend(record(s, hal));
    } else {
        for c in [&set.hal, &set.kernel, &set.kernel_pae] {
            let why = format!("{} into System32", from(c));
            put(s, &sys32, &c.name, c, why, &mut out);
        }
        let chosen = if pae { &set.kernel_pae } else { &set.kernel };
        let mut switches: Vec<&str> = entry
            .switches
            .iter()
            .map(String::as_str)
            .filter(|w| {
                let key = w.split('=').next().unwrap_or(w);
                !key.eq_ignore_ascii_case("/HAL") && !key.eq_ignore_ascii_case("/KERNEL")
            })
            .collect();
        let hal_switch = format!("/HAL={}", set.hal.name);
        let kernel_switch = format!("/KERNEL={}", chosen.name);
        switches.extend([hal_switch.as_str(), kernel_switch.as_str()]);
        let base = entry
            .description
            .split(" (rehost: ")
            .next()
            .unwrap_or(&entry.description);
        out.push((
            format!(
                "a new boot.ini entry loads {} and {}, and is the default. The old entry \
                 stays. {}",
                set.hal.name,
                chosen.name,
                if pae {
                    format!(
                        "{} is the PAE kernel: the loader enables PAE for this entry",
                        chosen.name
                    )
                } else {
                    format!(
                        "{} is the kernel without PAE: the loader does not enable PAE for this \
                         entry",
                        chosen.name
                    )
                }
            ),
            Change::BootIni {
                volume: store.volume,
                path: store.path.clone(),
                edit: Edit::AddEntry {
                    arc: entry.id.clone(),
                    description: format!("{base} (rehost: {})", hal.description),
                    switches: switches.join(" "),
                    default: true,
                },
            },
        ));
    }
    Ok(out)
}

/// Windows moves only between HALs of one kind: the HAL loaded now and the one setup
/// recorded must be ACPI when the target's is, or neither.
fn same_kind(s: &Subject, hal: &Hal) -> std::result::Result<(), NoHalSet> {
    let k = Knowledge::builtin();
    let loaded = s
        .loaded_hal()
        .and_then(|l| l.variant.clone())
        .ok_or(NoHalSet::UnknownLoadedHal)?;
    let recorded = s
        .install
        .hal
        .hardware_id
        .as_deref()
        .and_then(|id| k.hals_with_id(id).into_iter().find(|h| !h.modern));
    for (what, h) in [
        ("the HAL loaded", Some(&loaded)),
        ("the HAL setup recorded", recorded),
    ] {
        if let Some(h) = h.filter(|h| h.acpi != hal.acpi) {
            return Err(NoHalSet::OtherKind {
                what,
                installed: named(h),
                target: named(hal),
            });
        }
    }
    Ok(())
}

/// A HAL as a reason names it.
fn named(h: &Hal) -> Box<HalNamed> {
    Box::new(HalNamed {
        file: h.file.clone(),
        description: h.description.clone(),
        acpi: h.acpi,
    })
}

/// Puts `c` at `System32\<name>` unless it holds those bytes already; a different file
/// there is kept as `<name>.rehost-orig` (unless one is kept already).
fn put(
    s: &Subject,
    sys32: &str,
    name: &str,
    c: &Candidate,
    why: String,
    out: &mut Vec<(String, Change)>,
) {
    let (volume, path) = (s.install.volume, format!("{sys32}\\{name}"));
    if s.scene.is_file(volume, &path) {
        if s.scene.read(volume, &path).is_ok_and(|b| b == c.bytes) {
            return;
        }
        let orig = format!("{path}.rehost-orig");
        if !s.scene.is_file(volume, &orig) {
            out.push((
                format!("the {name} there now kept"),
                Change::Rename {
                    volume,
                    from: path.clone(),
                    to: orig,
                },
            ));
        }
    }
    out.push((
        why,
        Change::Put {
            volume,
            path,
            bytes: c.bytes.clone(),
        },
    ));
}

/// The HAL's record and class instance, in every control set that has one, naming `hal`.
fn record(s: &Subject, hal: &Hal) -> Option<(String, Change)> {
    let id = hal.hardware_ids.first()?;
    let mut ops = Vec::new();
    let mut sets = Vec::new();
    for &cs in &s.sets {
        let Some(key) = ["ACPI_HAL", "PCI_HAL"]
            .iter()
            .map(|k| format!("{}\\Enum\\Root\\{k}\\0000", s.cs_key(cs)))
            .find(|p| s.system.value(p, "HardwareID").ok().flatten().is_some())
        else {
            continue;
        };
        let desc = hal.description.as_str();
        ops.push(Op::Key(reg::system(&key)));
        ops.push(reg::set("HardwareID", 7, reg::multi_sz(&[id])));
        if s.system.value(&key, "DeviceDesc").ok().flatten().is_some() {
            ops.push(reg::set("DeviceDesc", 1, reg::sz(desc)));
        }
        // The class instance the record's Driver names (`{4D36E966-...}\0000`).
        let driver = s
            .system
            .value(&key, "Driver")
            .ok()
            .flatten()
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|d| {
                d.split_once('\\').is_some_and(|(class, n)| {
                    class.eq_ignore_ascii_case(HAL_CLASS)
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .unwrap_or_else(|| format!("{HAL_CLASS}\\0000"));
        let class = format!("{}\\Control\\Class\\{driver}", s.cs_key(cs));
        ops.push(Op::Key(reg::system(&class)));
        let driver_desc = hal.driver_desc.as_deref().unwrap_or(desc);
        ops.push(reg::set("DriverDesc", 1, reg::sz(driver_desc)));
        if let Some(section) = &hal.inf_section {
            ops.push(reg::set("InfSection", 1, reg::sz(section)));
        }
        ops.push(reg::set("MatchingDeviceId", 1, reg::sz(id)));
        sets.push(s.cs_key(cs));
    }
    (!ops.is_empty()).then(|| {
        (
            format!(
                "the HAL's record and class instance name {} ({id}) in {}",
                hal.file,
                sets.join(", ")
            ),
            Change::system(ops),
        )
    })
}
