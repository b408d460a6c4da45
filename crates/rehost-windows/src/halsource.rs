//! Where an NT 5.x install keeps the HALs and kernels it was not installed with, and
//! choosing a matching set from them: the service pack cabinets (`spN.cab`, the highest
//! first) and `driver.cab` in the driver cache (`DriverCachePath` in SOFTWARE, default
//! `%SystemRoot%\Driver Cache`, its `i386` folder), the loose files of
//! `%SystemRoot%\ServicePackFiles\i386`, and System32 itself. A set is one HAL and the
//! non-PAE and PAE kernels of its processor count, all of one file version: the version of
//! kernel32.dll when the image holds it (the seed's case: a restore brought back a newer
//! kernel32.dll than the HAL), else the highest. Which of its two kernels the loader takes
//! is [`boots_pae`]'s answer.

use super::knowledge::{Hal, Kernel, Knowledge};
use super::scene::Scene;
use rehost_core::error::Layer;
use rehost_formats::cab::Cab;
use rehost_formats::pe;
use rehost_regf::hive::Hive;

/// One copy of a file found in the install.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The file's name as a variant (`halmacpi.dll`).
    pub name: String,
    /// Where it was found (`\WINDOWS\Driver Cache\i386\sp2.cab`).
    pub source: String,
    /// Its FileVersion (`5.2.3790.3959`).
    pub version: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A HAL and its two kernels, of one version.
#[derive(Debug, Clone)]
pub struct Set {
    /// The HAL.
    pub hal: Candidate,
    /// The kernel without PAE (installed as ntoskrnl.exe).
    pub kernel: Candidate,
    /// The PAE kernel (installed as ntkrnlpa.exe).
    pub kernel_pae: Candidate,
    /// Whether its version is kernel32.dll's.
    pub matches_kernel32: bool,
}

/// The places searched, in order, with what each holds.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Cabinets and folders looked in.
    pub searched: Vec<String>,
    /// Every copy found of the files asked for.
    pub candidates: Vec<Candidate>,
    /// What could not be read, in words.
    pub errors: Vec<String>,
}

/// Version parts for ordering (`5.2.3790.3959` -> [5, 2, 3790, 3959]).
pub fn parts(v: &str) -> Vec<u32> {
    v.split(['.', ' '])
        .take(4)
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn version_of(bytes: &[u8], scene: &Scene, path: &str) -> Option<(String, Option<String>)> {
    let info = pe::parse(bytes, &scene.ctx.with_layer(Layer::Pe), path).ok()?;
    let v = info.version?;
    Some((v.file_version?, v.original_filename))
}

/// Finds every copy of the files `names` (`halmacpi.dll`, `ntkrnlmp.exe`, `ntkrpamp.exe`)
/// in the install at `root` on `volume`. `cache` is `DriverCachePath` when SOFTWARE has it.
pub fn find(
    scene: &Scene,
    volume: u32,
    root: &str,
    cache: Option<&str>,
    names: &[&str],
) -> Sources {
    let mut out = Sources::default();
    let cache_dir = match cache {
        Some(c) => {
            let c = c
                .replace("%SystemRoot%", root)
                .replace("%systemroot%", root);
            // A drive-letter path names the system volume: keep the path part.
            let c = c
                .get(2..)
                .filter(|_| c.as_bytes().get(1) == Some(&b':'))
                .unwrap_or(&c)
                .to_string();
            format!("{}\\i386", c.trim_end_matches('\\'))
        }
        None => format!("{root}\\Driver Cache\\i386"),
    };
    let mut cabs: Vec<(u32, String)> = Vec::new();
    if let Some(fs) = scene.fs(volume) {
        if let Ok(entries) = fs.read_dir(&cache_dir) {
            for e in entries.iter().filter(|e| !e.is_dir) {
                let n = e.name.to_ascii_lowercase();
                let rank = if n == "driver.cab" {
                    Some(0)
                } else {
                    n.strip_prefix("sp")
                        .and_then(|r| r.strip_suffix(".cab"))
                        .and_then(|d| d.parse::<u32>().ok())
                        .map(|d| d + 1)
                };
                if let Some(r) = rank {
                    cabs.push((r, format!("{cache_dir}\\{}", e.name)));
                }
            }
        }
    }
    cabs.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, path) in &cabs {
        out.searched.push(path.clone());
        let opened = scene
            .open_file(volume, path)
            .and_then(|dev| Cab::open(dev, scene.ctx.with_layer(Layer::Cab)));
        let mut cab = match opened {
            Ok(c) => c,
            Err(e) => {
                out.errors.push(format!("{path}: {e}"));
                continue;
            }
        };
        for name in names {
            if cab.find(name).is_none() {
                continue;
            }
            match cab.read(name) {
                Ok(bytes) => push(&mut out, scene, name, path, bytes),
                Err(e) => out.errors.push(format!("{path}: {e}")),
            }
        }
    }
    for dir in [
        format!("{root}\\ServicePackFiles\\i386"),
        format!("{root}\\System32"),
    ] {
        out.searched.push(dir.clone());
        for name in names {
            let path = format!("{dir}\\{name}");
            if scene.is_file(volume, &path) {
                match scene.read(volume, &path) {
                    Ok(bytes) => push(&mut out, scene, name, &path, bytes),
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
        }
    }
    out
}

fn push(out: &mut Sources, scene: &Scene, name: &str, source: &str, bytes: Vec<u8>) {
    match version_of(&bytes, scene, &format!("{source}:{name}")) {
        // A copy that calls itself another variant is not this one.
        Some((_, Some(orig))) if !orig.eq_ignore_ascii_case(name) => out
            .errors
            .push(format!("{source}: {name} says it is {orig}; not used")),
        Some((version, _)) => out.candidates.push(Candidate {
            name: name.to_string(),
            source: source.to_string(),
            version,
            bytes,
        }),
        None => out.errors.push(format!(
            "{source}: {name} has no version resource; not used"
        )),
    }
}

/// SOFTWARE's `DriverCachePath` (`%SystemRoot%\Driver Cache`), when it has one.
pub fn driver_cache_path(software: &Hive) -> Option<String> {
    software
        .value(
            "Microsoft\\Windows\\CurrentVersion\\Setup",
            "DriverCachePath",
        )
        .ok()
        .flatten()?
        .as_str()
        .map(str::to_string)
}

/// The non-PAE and the PAE kernel variant a HAL of this variant needs (its processor count).
pub fn kernels_for(hal: &Hal) -> Option<(&'static Kernel, &'static Kernel)> {
    let k = Knowledge::builtin();
    let of = |pae: bool| {
        k.kernels
            .iter()
            .find(|x| x.processors == hal.processors && x.pae == pae)
    };
    Some((of(false)?, of(true)?))
}

/// Whether ntldr starts the PAE kernel for a boot.ini entry with `switches`, on a machine
/// whose processor has NX (every target rehost knows), when the kernel's FileVersion is
/// `version`. From the releases `hal.toml` lists under `dep` on, Data Execution Prevention
/// is on unless `/EXECUTE` or `/NOEXECUTE=ALWAYSOFF` turns it off, and with it PAE
/// (`/NOPAE` is then ignored); otherwise PAE only for `/PAE` without `/NOPAE`.
pub fn boots_pae(version: &str, switches: &[String]) -> bool {
    let has = |name: &str| switches.iter().any(|s| s.eq_ignore_ascii_case(name));
    let noexecute = switches.iter().find_map(|s| {
        let (k, v) = s.split_once('=')?;
        k.eq_ignore_ascii_case("/NOEXECUTE").then_some(v)
    });
    let p = parts(version);
    let dep_release = Knowledge::builtin().dep.iter().any(|d| {
        let r = parts(&d.version);
        p.len() >= 4 && r.len() >= 2 && p[..2] == r[..2] && p[3] >= d.min_revision
    });
    let dep_off = has("/EXECUTE") || noexecute.is_some_and(|v| v.eq_ignore_ascii_case("AlwaysOff"));
    (dep_release && !dep_off) || (has("/PAE") && !has("/NOPAE"))
}

/// The set of `hal`, `kernel` and `kernel_pae` to install: one version for all three,
/// kernel32.dll's when it is there, else the highest. `None` when no version has all three.
pub fn choose(
    found: &Sources,
    hal: &str,
    kernel: &str,
    kernel_pae: &str,
    kernel32: Option<&str>,
) -> Option<Set> {
    let of = |name: &str, v: &str| {
        found
            .candidates
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name) && parts(&c.version) == parts(v))
            .cloned()
    };
    let mut versions: Vec<String> = found
        .candidates
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(hal))
        .map(|c| c.version.clone())
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(parts(v)));
    let complete = |v: &String| of(kernel, v).is_some() && of(kernel_pae, v).is_some();
    let wanted = kernel32.map(parts);
    let chosen = versions
        .iter()
        .find(|v| Some(parts(v)) == wanted && complete(v))
        .or_else(|| versions.iter().find(|v| complete(v)))?;
    Some(Set {
        hal: of(hal, chosen)?,
        kernel: of(kernel, chosen)?,
        kernel_pae: of(kernel_pae, chosen)?,
        matches_kernel32: Some(parts(chosen)) == wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, version: &str) -> Candidate {
        Candidate {
            name: name.into(),
            source: "x".into(),
            version: version.into(),
            bytes: Vec::new(),
        }
    }

    #[test]
    fn one_version_for_all_three_and_kernel32s_first() {
        let found = Sources {
            candidates: vec![
                c("halmacpi.dll", "5.2.3790.1830"),
                c("ntkrnlmp.exe", "5.2.3790.1830"),
                c("ntkrpamp.exe", "5.2.3790.1830"),
                c("halmacpi.dll", "5.2.3790.3959"),
                c("ntkrnlmp.exe", "5.2.3790.3959"),
                c("ntkrpamp.exe", "5.2.3790.3959"),
                c("halmacpi.dll", "5.2.3790.4000"),
                c("ntkrnlmp.exe", "5.2.3790.4000"),
            ],
            ..Default::default()
        };
        let s = choose(
            &found,
            "halmacpi.dll",
            "ntkrnlmp.exe",
            "ntkrpamp.exe",
            Some("5.2.3790.3959 (srv03_sp2_rtm.070216-1710)"),
        )
        .unwrap();
        assert_eq!(s.hal.version, "5.2.3790.3959");
        assert!(s.matches_kernel32);
        // Without kernel32's version: the highest complete set (4000 lacks the PAE kernel).
        let s = choose(&found, "halmacpi.dll", "ntkrnlmp.exe", "ntkrpamp.exe", None).unwrap();
        assert_eq!(
            (s.kernel.version.as_str(), s.matches_kernel32),
            ("5.2.3790.3959", false)
        );
        assert!(choose(&found, "halaacpi.dll", "ntoskrnl.exe", "ntkrnlpa.exe", None).is_none());
    }

    #[test]
    fn pae_follows_dep_and_the_switches() {
        let sw = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
        // XP SP2 and 2003 SP1 on: DEP, and with it PAE, unless DEP is turned off.
        assert!(boots_pae("5.1.2600.2180", &sw("/fastdetect")));
        assert!(boots_pae(
            "5.2.3790.3959 (srv03_sp2_rtm.070216-1710)",
            &sw("/noexecute=optout")
        ));
        assert!(boots_pae("5.1.2600.5512", &sw("/noexecute=optin /NOPAE")));
        assert!(!boots_pae("5.1.2600.5512", &sw("/noexecute=alwaysoff")));
        assert!(!boots_pae("5.2.3790.1830", &sw("/execute")));
        assert!(boots_pae("5.2.3790.1830", &sw("/execute /PAE")));
        assert!(!boots_pae(
            "5.1.2600.5512",
            &sw("/noexecute=alwaysoff /pae /nopae")
        ));
        // Before them: only /PAE.
        assert!(!boots_pae("5.1.2600.1106", &sw("/fastdetect")));
        assert!(!boots_pae("5.2.3790.0", &sw("/fastdetect")));
        assert!(boots_pae("5.0.2195.6717", &sw("/fastdetect /PAE")));
        let mp = Knowledge::builtin().hals_named("halmacpi.dll")[0];
        let (k, kp) = kernels_for(mp).unwrap();
        assert_eq!(
            (k.file.as_str(), kp.file.as_str()),
            ("ntkrnlmp.exe", "ntkrpamp.exe")
        );
    }
}
