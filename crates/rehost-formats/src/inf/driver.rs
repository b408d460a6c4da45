//! What a driver INF installs on a given Windows: the Models section its Manufacturer
//! entry decorates for that architecture and version (`NTamd64.6.1`), the devices it
//! matches, the install section (`X.NTamd64`, `X.NT`, `X`), its services (`AddService`
//! with ServiceType, StartType, ErrorControl, ServiceBinary, LoadOrderGroup and their
//! AddReg entries), the files it copies, and where the function driver's binary lies below
//! the INF's folder (`SourceDisksNames`, `SourceDisksFiles`). Every name that becomes a
//! path (on the host, or in the image) is checked to stay inside its folder
//! ([`rehost_core::names::contained`]): an INF that names `..`, an absolute path, a drive
//! or a device is refused, with the line and the name.

use super::{Inf, InfError};
use rehost_core::names;

/// The Windows an INF is read for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// "x86", "amd64", "arm64" or "ia64".
    pub arch: String,
    /// Major version (5 for XP and 2003, 6 for Vista to 8.1, 10).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Build number.
    pub build: u32,
    /// 1 workstation, 2 domain controller, 3 server.
    pub product_type: u32,
}

/// A TargetOSVersion decoration: `NT[arch][.major[.minor[.product[.suite[.build]]]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Decoration {
    arch: Option<String>,
    version: Vec<u32>,
}

fn number(s: &str) -> Option<u32> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

impl Decoration {
    fn parse(s: &str) -> Option<Decoration> {
        let mut parts = s.trim().split('.');
        let head = parts.next()?;
        let arch = head
            .get(..2)
            .filter(|p| p.eq_ignore_ascii_case("nt"))
            .map(|_| head[2..].to_ascii_lowercase())?;
        let version = parts.map(|p| number(p).unwrap_or(0)).collect();
        Some(Decoration {
            arch: (!arch.is_empty()).then_some(arch),
            version,
        })
    }

    /// Whether this decoration applies to `t`: the architecture, a version at or below,
    /// the product type, and the build (field 5) at or below.
    fn applies(&self, t: &Target) -> bool {
        let arch_ok = match &self.arch {
            Some(a) => *a == t.arch,
            None => t.arch == "x86",
        };
        let v = &self.version;
        let at = |i: usize| v.get(i).copied().filter(|x| *x != 0);
        let version_ok = match (at(0), at(1)) {
            (Some(ma), mi) => (ma, mi.unwrap_or(0)) <= (t.major, t.minor),
            (None, _) => true,
        };
        let product_ok = at(2).is_none_or(|p| p == t.product_type);
        let build_ok = at(4).is_none_or(|b| b <= t.build);
        arch_ok && version_ok && product_ok && build_ok
    }

    /// How close it is, for choosing among those that apply: version, build, then how many
    /// fields it names.
    fn rank(&self) -> (u32, u32, u32, usize) {
        let v = |i: usize| self.version.get(i).copied().unwrap_or(0);
        (
            v(0),
            v(1),
            v(4),
            self.version.len() + self.arch.is_some() as usize,
        )
    }
}

/// A device an INF installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The Models section it was read from (`VIOSTOR.NTamd64.6.1`).
    pub section: String,
    /// Device description.
    pub description: String,
    /// Its install section as the Models line names it.
    pub install: String,
    /// The install section chosen for the target (decorated where the INF decorates it).
    pub install_section: String,
    /// Hardware and compatible IDs, as written (`PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4`).
    pub ids: Vec<String>,
}

/// A registry entry of an AddReg section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegEntry {
    /// HKR (relative to the service key here), HKLM, ...
    pub root: String,
    /// Subkey below the root ("" for the root itself).
    pub subkey: String,
    /// Value name ("" for the default value); `None` for a key-only entry.
    pub name: Option<String>,
    /// Registry type.
    pub kind: u32,
    /// Data as stored.
    pub data: Vec<u8>,
    /// FLG_ADDREG flags as written.
    pub flags: u32,
}

/// A service an install section adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstall {
    /// Service key name.
    pub name: String,
    /// AddService flags (0x2: the device's function driver).
    pub flags: u32,
    /// ServiceType (1 kernel driver).
    pub service_type: u32,
    /// StartType (0 boot ... 4 disabled).
    pub start_type: u32,
    /// ErrorControl.
    pub error_control: u32,
    /// ServiceBinary as written (`%12%\viostor.sys`).
    pub binary: String,
    /// Where the binary lies below the INF's folder, `\`-separated: the path
    /// `SourceDisksNames` gives its disk, the subdirectory `SourceDisksFiles` gives it, and
    /// its file name (`viostor.sys` alone where neither names a folder). Checked to stay
    /// inside the folder.
    pub source: String,
    /// LoadOrderGroup.
    pub group: Option<String>,
    /// AddReg entries of the service-install section (HKR is the service key).
    pub add_reg: Vec<RegEntry>,
}

impl ServiceInstall {
    /// The file name of the binary (`viostor.sys`).
    pub fn binary_file(&self) -> &str {
        self.binary
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or(&self.binary)
    }

    /// ImagePath as setup writes it for a driver in `%12%` (System32\drivers).
    pub fn image_path(&self) -> String {
        format!("System32\\drivers\\{}", self.binary_file())
    }
}

/// What an INF installs on one target.
#[derive(Debug, Clone)]
pub struct Driver {
    /// `[Version] Class`.
    pub class: Option<String>,
    /// `[Version] ClassGuid`, as written.
    pub class_guid: Option<String>,
    /// `[Version] Provider`.
    pub provider: Option<String>,
    /// `[Version] DriverVer` (`mm/dd/yyyy,w.x.y.z`).
    pub driver_ver: Option<String>,
    /// `[Version] CatalogFile`.
    pub catalog: Option<String>,
    /// The devices, from the Models sections chosen for the target.
    pub models: Vec<Model>,
    /// Services the chosen install sections add, each once.
    pub services: Vec<ServiceInstall>,
    /// Files the chosen install sections copy, each once.
    pub files: Vec<String>,
}

fn err<T>(line: usize, what: impl Into<String>) -> Result<T, InfError> {
    Err(InfError {
        line,
        what: what.into(),
    })
}

/// The AddReg type and data of an entry's flags and value fields.
fn reg_data(flags: u32, values: &[String]) -> (u32, Vec<u8>) {
    let utf16z = |s: &str| -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    };
    let hex = |vals: &[String]| -> Vec<u8> {
        vals.iter()
            .filter_map(|v| u8::from_str_radix(v.trim(), 16).ok())
            .collect()
    };
    let first = values.first().map(String::as_str).unwrap_or("");
    match flags & 0xFFFF_0001 {
        0x0001_0001 => (4, number(first).unwrap_or(0).to_le_bytes().to_vec()),
        0x0001_0000 => {
            let mut d: Vec<u8> = values.iter().flat_map(|v| utf16z(v)).collect();
            d.extend([0, 0]);
            (7, d)
        }
        0x0002_0000 => (2, utf16z(first)),
        0x0000_0000 => (1, utf16z(first)),
        0x0000_0001 => (3, hex(values)),
        // FLG_ADDREG_TYPE_NONE: REG_NONE, although its high word reads as REG_EXPAND_SZ.
        0x0002_0001 => (0, hex(values)),
        other => (other >> 16, hex(values)),
    }
}

impl Inf {
    /// The `[Version]` field `key`, all its comma-separated parts (`DriverVer` holds a
    /// date and a version).
    fn version(&self, key: &str) -> Option<String> {
        let line = self.section("Version")?.lines.iter().find(|l| {
            l.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })?;
        Some(line.values.join(","))
    }

    /// The Models sections that apply to `t`, one per Manufacturer entry.
    fn models_sections(&self, t: &Target) -> Result<Vec<String>, InfError> {
        let Some(m) = self.section("Manufacturer") else {
            return err(0, "no [Manufacturer] section");
        };
        let mut out = Vec::new();
        for l in &m.lines {
            let Some(base) = l.values.first().filter(|b| !b.is_empty()) else {
                continue;
            };
            let mut best: Option<(Decoration, String)> = None;
            for d in l.values.iter().skip(1) {
                let Some(dec) = Decoration::parse(d) else {
                    return err(l.number, format!("{d:?} is not a TargetOSVersion"));
                };
                if dec.applies(t) && best.as_ref().is_none_or(|(b, _)| dec.rank() > b.rank()) {
                    best = Some((dec, format!("{base}.{d}")));
                }
            }
            match best {
                Some((_, name)) => out.push(name),
                None if t.arch == "x86" => out.push(base.clone()),
                None => {}
            }
        }
        Ok(out)
    }

    /// The install section a Models line names, decorated for the target where the INF
    /// has such a section.
    fn install_section(&self, install: &str, t: &Target) -> Option<String> {
        [
            format!("{install}.NT{}", t.arch),
            format!("{install}.NT"),
            install.to_string(),
        ]
        .into_iter()
        .find(|n| self.section(n).is_some())
    }

    fn add_reg(&self, section: &str) -> Vec<RegEntry> {
        let mut out = Vec::new();
        let Some(s) = self.section(section) else {
            return out;
        };
        for l in &s.lines {
            let v = &l.values;
            let Some(root) = v.first() else { continue };
            let flags = v.get(3).and_then(|f| number(f)).unwrap_or(0);
            let (kind, data) = reg_data(flags, v.get(4..).unwrap_or(&[]));
            out.push(RegEntry {
                root: root.to_ascii_uppercase(),
                subkey: v.get(1).cloned().unwrap_or_default(),
                name: v.get(2).cloned().filter(|_| flags & 0x10 == 0),
                kind,
                data,
                flags,
            });
        }
        out
    }

    fn service(&self, line: &super::Line, t: &Target) -> Result<ServiceInstall, InfError> {
        let v = &line.values;
        let (Some(name), Some(section)) = (v.first(), v.get(2)) else {
            return err(
                line.number,
                "AddService without a name and a service-install section",
            );
        };
        if let Err(e) = names::single(name) {
            return err(line.number, format!("AddService: the service name {e}"));
        }
        let Some(s) = self.section(section) else {
            return err(
                line.number,
                format!("no service-install section [{section}]"),
            );
        };
        let field = |k: &str| self.value(&s.name, k);
        let num = |k: &str| -> Result<u32, InfError> {
            match field(k).map(number) {
                Some(Some(n)) => Ok(n),
                Some(None) => err(line.number, format!("[{section}] {k} is not a number")),
                None => err(line.number, format!("[{section}] has no {k}")),
            }
        };
        let binary = field("ServiceBinary")
            .map(str::to_string)
            .ok_or_else(|| InfError {
                line: line.number,
                what: format!("[{section}] has no ServiceBinary"),
            })?;
        // `%12%\viostor.sys`: the directory ID stands for a folder of the install; the
        // rest is the binary's path below it, whose last part the file's name there.
        let below = match binary.strip_prefix('%').and_then(|r| r.split_once('%')) {
            Some((_, rest)) => rest.strip_prefix(['\\', '/']).unwrap_or(rest),
            None => binary.as_str(),
        };
        if let Err(e) = names::contained(below) {
            return err(
                line.number,
                format!("[{section}] ServiceBinary {binary}: {e}"),
            );
        }
        let add_reg = s
            .lines
            .iter()
            .filter(|l| {
                l.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("AddReg"))
            })
            .flat_map(|l| l.values.iter())
            .flat_map(|sec| self.add_reg(sec))
            .collect();
        Ok(ServiceInstall {
            name: name.clone(),
            flags: v.get(1).and_then(|f| number(f)).unwrap_or(0),
            service_type: num("ServiceType")?,
            start_type: num("StartType")?,
            error_control: num("ErrorControl")?,
            source: self.source_of(&binary, t)?,
            binary,
            group: field("LoadOrderGroup").map(str::to_string),
            add_reg,
        })
    }

    /// The lines of `base` decorated for `t`'s architecture (`SourceDisksFiles.amd64`),
    /// then of `base` itself.
    fn source_lines<'a>(&'a self, base: &str, t: &Target) -> impl Iterator<Item = &'a super::Line> {
        [format!("{base}.{}", t.arch), base.to_string()]
            .into_iter()
            .filter_map(|n| self.section(&n))
            .flat_map(|s| s.lines.iter())
    }

    /// Checks every name `SourceDisksNames` and `SourceDisksFiles` give for `t`: a disk's
    /// path and a file's subdirectory must stay inside the INF's folder, a file's name be
    /// one name.
    fn check_sources(&self, t: &Target) -> Result<(), InfError> {
        for l in self.source_lines("SourceDisksNames", t) {
            let path = l.values.get(3).map(String::as_str).unwrap_or("");
            if !path.is_empty() {
                if let Err(e) = names::contained(path) {
                    let disk = l.key.as_deref().unwrap_or("");
                    return err(
                        l.number,
                        format!("SourceDisksNames: disk {disk}'s path {e}"),
                    );
                }
            }
        }
        for l in self.source_lines("SourceDisksFiles", t) {
            let file = l.key.as_deref().unwrap_or("");
            if let Err(e) = names::single(file) {
                return err(l.number, format!("SourceDisksFiles: the file name {e}"));
            }
            let sub = l.values.get(1).map(String::as_str).unwrap_or("");
            if !sub.is_empty() {
                if let Err(e) = names::contained(sub) {
                    return err(
                        l.number,
                        format!("SourceDisksFiles: {file}'s subdirectory {e}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Where the file named by the ServiceBinary `binary` lies below the INF's folder for
    /// `t`: its disk's path, its subdirectory and its name, `\`-separated (see
    /// [`ServiceInstall::source`]).
    fn source_of(&self, binary: &str, t: &Target) -> Result<String, InfError> {
        let file = binary.rsplit(['\\', '/']).next().unwrap_or(binary);
        let Some(l) = self.source_lines("SourceDisksFiles", t).find(|l| {
            l.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(file))
        }) else {
            return Ok(file.to_string());
        };
        let disk = l.values.first().map(String::as_str).unwrap_or("");
        let sub = l.values.get(1).map(String::as_str).unwrap_or("");
        let path = self
            .source_lines("SourceDisksNames", t)
            .find(|d| d.key.as_deref().is_some_and(|k| k == disk))
            .and_then(|d| d.values.get(3))
            .map(String::as_str)
            .unwrap_or("");
        let joined: Vec<&str> = [path, sub, file]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        let joined = joined.join("\\");
        match names::contained(&joined) {
            Ok(parts) => Ok(parts.join("\\")),
            Err(e) => err(l.number, format!("SourceDisksFiles: {file}'s source {e}")),
        }
    }

    /// What this INF installs on `t`.
    pub fn driver(&self, t: &Target) -> Result<Driver, InfError> {
        self.check_sources(t)?;
        let mut d = Driver {
            class: self.version("Class"),
            class_guid: self.version("ClassGuid"),
            provider: self.version("Provider"),
            driver_ver: self.version("DriverVer"),
            catalog: self.version("CatalogFile"),
            models: Vec::new(),
            services: Vec::new(),
            files: Vec::new(),
        };
        for sec in self.models_sections(t)? {
            let Some(s) = self.section(&sec) else {
                continue;
            };
            for l in &s.lines {
                let Some(install) = l.values.first().filter(|i| !i.is_empty()) else {
                    continue;
                };
                let Some(chosen) = self.install_section(install, t) else {
                    return err(l.number, format!("no install section [{install}]"));
                };
                d.models.push(Model {
                    section: s.name.clone(),
                    description: l.key.clone().unwrap_or_default(),
                    install: install.clone(),
                    install_section: chosen,
                    ids: l.values[1..]
                        .iter()
                        .filter(|i| !i.is_empty())
                        .cloned()
                        .collect(),
                });
            }
        }
        let mut installs: Vec<String> =
            d.models.iter().map(|m| m.install_section.clone()).collect();
        installs.dedup();
        for inst in &installs {
            if let Some(svc) = self.section(&format!("{inst}.Services")) {
                for l in &svc.lines {
                    let add = l
                        .key
                        .as_deref()
                        .is_some_and(|k| k.eq_ignore_ascii_case("AddService"));
                    if add
                        && !l.values.first().is_some_and(|n| {
                            d.services.iter().any(|s| s.name.eq_ignore_ascii_case(n))
                        })
                    {
                        d.services.push(self.service(l, t)?);
                    }
                }
            }
            let Some(s) = self.section(inst) else {
                continue;
            };
            for l in s.lines.iter().filter(|l| {
                l.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("CopyFiles"))
            }) {
                for target in &l.values {
                    let listed: Vec<String> = match target.strip_prefix('@') {
                        Some(f) => vec![f.to_string()],
                        None => self
                            .section(target)
                            .map(|fs| {
                                fs.lines
                                    .iter()
                                    .filter_map(|fl| fl.values.first().or(fl.key.as_ref()).cloned())
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    for n in listed.into_iter().filter(|n| !n.is_empty()) {
                        if let Err(e) = names::single(&n) {
                            return err(l.number, format!("CopyFiles {target}: the file name {e}"));
                        }
                        if !d.files.iter().any(|f| f.eq_ignore_ascii_case(&n)) {
                            d.files.push(n);
                        }
                    }
                }
            }
        }
        Ok(d)
    }
}
