//! What a rule looks at: one install of an opened image, its hives and volumes, with the
//! lookups several rules share (services by control set, the CriticalDeviceDatabase, the
//! HAL and kernels the default boot entry loads) done once and remembered.

use super::version::Version;
use rehost_core::error::Result;
use rehost_core::io::ReadAt;
use rehost_regf::hive::{Hive, SubkeyIndex};
use rehost_windows::install::{control_set_key, named_sets};
use rehost_windows::knowledge::{Hal, Kernel, Knowledge, Service as KnownService};
use rehost_windows::report::{BootEntry, ImageReport, Install, ServiceReport, VolumeReport};
use rehost_windows::scene::Scene;
use rehost_windows::{devices, hal};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One install and everything the rules read of it.
pub struct Subject<'a> {
    /// The image's report.
    pub image: &'a ImageReport,
    /// The install's report.
    pub install: &'a Install,
    /// The volumes and file systems.
    pub scene: &'a Scene,
    /// The SYSTEM hive (replayed when it was dirty).
    pub system: &'a Hive,
    /// The SOFTWARE hive, when readable.
    pub software: Option<&'a Hive>,
    /// The whole disk, for raw reads (boot sectors).
    pub disk: &'a dyn ReadAt,
    /// The Windows version, when SOFTWARE says it.
    pub version: Option<Version>,
    /// The control set the next boot uses (`Select\Default`, else `Current`).
    pub boot_set: Option<u32>,
    /// Every control set `Select` names, the boot set first.
    pub sets: Vec<u32>,
    services: RefCell<HashMap<(u32, String), Service>>,
    indexes: RefCell<HashMap<String, Option<Rc<SubkeyIndex>>>>,
    cddb_service: RefCell<Vec<(u32, String, Option<String>)>>,
    files: RefCell<HashMap<String, bool>>,
    drivers: std::cell::OnceCell<Option<std::collections::HashSet<String>>>,
    roles: RefCell<Vec<(&'static str, Present)>>,
    hal: std::cell::OnceCell<Option<Loaded<Hal>>>,
}

/// A service as a control set holds it (`None`: no such key), shared between the rules.
pub type Service = Option<Rc<ServiceReport>>;

/// The services of one role rehost knows that a control set holds: (control set, what
/// rehost knows of the service, the service).
pub type Present = Rc<Vec<(u32, &'static KnownService, Rc<ServiceReport>)>>;

/// A HAL or kernel file the default boot entry loads, and the variant it is.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The file in System32 (`hal.dll`, or what `/HAL=` names).
    pub file: String,
    /// Its OriginalFilename, when readable.
    pub original: Option<String>,
    /// The variant rehost knows it as.
    pub variant: Option<T>,
}

impl<'a> Subject<'a> {
    /// The subject for `install` of `image`, with its hives.
    pub fn new(
        image: &'a ImageReport,
        install: &'a Install,
        scene: &'a Scene,
        system: &'a Hive,
        software: Option<&'a Hive>,
        disk: &'a dyn ReadAt,
    ) -> Subject<'a> {
        let cs = &install.control_sets;
        let boot_set = cs.default.or(cs.current).filter(|n| *n != 0);
        let mut sets = named_sets(cs);
        if let Some(b) = boot_set {
            sets.retain(|s| *s != b);
            sets.insert(0, b);
        }
        Subject {
            image,
            install,
            scene,
            system,
            software,
            disk,
            version: install.version.as_deref().and_then(Version::parse),
            boot_set,
            sets,
            services: RefCell::new(HashMap::new()),
            indexes: RefCell::new(HashMap::new()),
            cddb_service: RefCell::new(Vec::new()),
            files: RefCell::new(HashMap::new()),
            drivers: std::cell::OnceCell::new(),
            roles: RefCell::new(Vec::new()),
            hal: std::cell::OnceCell::new(),
        }
    }

    /// Whether the install is NT 5.x (by its version, else by its HAL's file version).
    pub fn nt5(&self) -> bool {
        match self.version {
            Some(v) => v.nt5(),
            None => self
                .install
                .hal
                .file_version
                .as_deref()
                .is_some_and(|v| v.starts_with("5.")),
        }
    }

    /// `ControlSet00N`.
    pub fn cs_key(&self, cs: u32) -> String {
        control_set_key(cs)
    }

    /// The service `name` of control set `cs`: from inspect's report when it read it,
    /// else from the hive; remembered.
    pub fn service(&self, cs: u32, name: &str) -> Result<Service> {
        let key = (cs, name.to_ascii_lowercase());
        if let Some(s) = self.services.borrow().get(&key) {
            return Ok(s.clone());
        }
        let known = self
            .install
            .services
            .iter()
            .find(|s| s.control_set == cs && s.name.eq_ignore_ascii_case(name))
            .cloned();
        // inspect read every service storage.toml names in every set Select names: one it
        // did not report is not there.
        let covered = Knowledge::builtin().service(name).is_some() && self.sets.contains(&cs);
        let found = match known {
            Some(s) => Some(s),
            None if covered => None,
            None => devices::service(
                self.scene,
                (self.install.volume, &self.install.system_root),
                self.system,
                cs,
                name,
            )?,
        }
        .map(Rc::new);
        self.services.borrow_mut().insert(key, found.clone());
        Ok(found)
    }

    /// The services of `role` ("cpu", "hypervisor") in `storage.toml` that each control set
    /// `Select` names holds; worked out once per role.
    pub fn present(&self, role: &'static str) -> Result<Present> {
        if let Some((_, p)) = self.roles.borrow().iter().find(|(r, _)| *r == role) {
            return Ok(p.clone());
        }
        let mut found = Vec::new();
        for svc in Knowledge::builtin()
            .services
            .iter()
            .filter(|x| x.role == role)
        {
            for &cs in &self.sets {
                if let Some(r) = self.service(cs, &svc.name)? {
                    found.push((cs, svc, r));
                }
            }
        }
        let p = Rc::new(found);
        self.roles.borrow_mut().push((role, p.clone()));
        Ok(p)
    }

    /// The first CriticalDeviceDatabase entry of control set `cs` that one of `names` (in
    /// the database's form, most specific first, as Plug and Play tries them) has: the key
    /// name and its `Service`. The database's names are indexed once per control set: each
    /// target tries a dozen IDs, and a Windows 7 database holds thousands of entries.
    pub fn cddb_first(
        &self,
        cs: u32,
        names: &[String],
    ) -> Result<Option<(String, Option<String>)>> {
        let Some(index) = self.index(&self.cddb_key(cs))? else {
            return Ok(None);
        };
        let Some(name) = names.iter().find(|n| index.contains(self.system, n)) else {
            return Ok(None);
        };
        let known = self
            .cddb_service
            .borrow()
            .iter()
            .find(|(c, n, _)| *c == cs && n == name)
            .map(|(_, _, s)| s.clone());
        let service = match known {
            Some(s) => s,
            None => {
                let s = index.string(self.system, name, "Service")?.flatten();
                self.cddb_service
                    .borrow_mut()
                    .push((cs, name.clone(), s.clone()));
                s
            }
        };
        Ok(Some((name.clone(), service)))
    }

    /// An index of the subkeys of `path` in SYSTEM (`None` when it does not exist);
    /// remembered.
    pub fn index(&self, path: &str) -> Result<Option<Rc<SubkeyIndex>>> {
        let key = path.to_ascii_lowercase();
        if let Some(i) = self.indexes.borrow().get(&key) {
            return Ok(i.clone());
        }
        let i = self.system.subkey_index(path)?.map(Rc::new);
        self.indexes.borrow_mut().insert(key, i.clone());
        Ok(i)
    }

    /// Whether the key `parent\name` exists in SYSTEM, through the index of `parent`.
    pub fn has_subkey(&self, parent: &str, name: &str) -> Result<bool> {
        Ok(self
            .index(parent)?
            .is_some_and(|i| i.contains(self.system, name)))
    }

    /// The CriticalDeviceDatabase key of control set `cs`.
    pub fn cddb_key(&self, cs: u32) -> String {
        format!("{}\\Control\\CriticalDeviceDatabase", self.cs_key(cs))
    }

    /// Control set `cs` in words: "ControlSet002 (Last Known Good)".
    pub fn set_name(&self, cs: u32) -> String {
        let c = &self.install.control_sets;
        let mut roles = Vec::new();
        if c.current == Some(cs) {
            roles.push("Current");
        }
        if c.default == Some(cs) {
            roles.push("Default");
        }
        if c.last_known_good == Some(cs) {
            roles.push("Last Known Good");
        }
        format!("{} ({})", self.cs_key(cs), roles.join(", "))
    }

    /// Whether `path` is a file on the install's volume; remembered. Files of
    /// `System32\drivers` are looked up in one listing of that directory.
    pub fn is_file(&self, path: &str) -> bool {
        let dir = format!("{}\\System32\\drivers\\", self.install.system_root);
        let in_drivers = path
            .get(..dir.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(&dir))
            && !path[dir.len()..].contains('\\');
        if in_drivers {
            let listing = self.drivers.get_or_init(|| {
                let fs = self.scene.fs(self.install.volume)?;
                let entries = fs.read_dir(dir.trim_end_matches('\\')).ok()?;
                Some(
                    entries
                        .into_iter()
                        .filter(|e| !e.is_dir)
                        .map(|e| e.name.to_uppercase())
                        .collect(),
                )
            });
            if let Some(names) = listing {
                return names.contains(&path[dir.len()..].to_uppercase());
            }
        }
        let key = path.to_ascii_lowercase();
        if let Some(f) = self.files.borrow().get(&key) {
            return *f;
        }
        let found = self.scene.is_file(self.install.volume, path);
        self.files.borrow_mut().insert(key, found);
        found
    }

    /// `System32\drivers\<name>.sys` of the install.
    pub fn driver_file(&self, name: &str) -> String {
        format!(
            "{}\\System32\\drivers\\{name}.sys",
            self.install.system_root
        )
    }

    /// The volume report of `index`.
    pub fn volume(&self, index: u32) -> Option<&VolumeReport> {
        self.image.volumes.iter().find(|v| v.index == index)
    }

    /// The boot entry that starts the install by default (or the first that starts it).
    pub fn default_entry(&self) -> Option<&BootEntry> {
        let link = self.install.boot.default_entry.as_ref().or(self
            .install
            .boot
            .entries
            .first())?;
        self.image
            .boot_stores
            .iter()
            .find(|s| s.kind == link.store && s.volume == link.store_volume)?
            .entries
            .iter()
            .find(|e| e.id == link.entry)
    }

    /// The file name a boot entry's `/HAL=` or `/KERNEL=` (or BCD path) gives.
    fn entry_file(path: Option<&String>) -> Option<String> {
        path.map(|p| p.rsplit(['\\', '/']).next().unwrap_or(p).to_string())
            .filter(|f| !f.is_empty())
    }

    /// The HAL the default boot entry loads, and the variant it is; worked out once.
    pub fn loaded_hal(&self) -> Option<&Loaded<Hal>> {
        self.hal.get_or_init(|| self.find_hal()).as_ref()
    }

    fn find_hal(&self) -> Option<Loaded<Hal>> {
        let k = Knowledge::builtin();
        let named = Self::entry_file(self.default_entry().and_then(|e| e.hal.as_ref()));
        // Without a name from the entry, the loader's own choice (halmacpi.dll on x86
        // Windows 8 and later).
        let chosen = named.or_else(|| {
            let (arch, v) = (self.install.arch.as_deref()?, self.version?);
            let file = k.loader_hal(arch, v.major, v.minor);
            (!file.eq_ignore_ascii_case("hal.dll")).then(|| file.to_string())
        });
        let (file, original, hwid) = match chosen {
            Some(f) if !f.eq_ignore_ascii_case("hal.dll") => {
                let original = self.original_of(&f);
                (f, original, None)
            }
            _ => (
                "hal.dll".to_string(),
                self.install.hal.original_filename.clone(),
                self.install.hal.hardware_id.clone(),
            ),
        };
        original.as_ref()?;
        let variant = original
            .as_deref()
            .and_then(|o| k.hal_variant(o, hwid.as_deref()))
            .cloned();
        Some(Loaded {
            file,
            original,
            variant,
        })
    }

    /// The kernels the default boot entry can load: the one `/KERNEL=` names, else
    /// ntoskrnl.exe and ntkrnlpa.exe as present.
    pub fn loaded_kernels(&self) -> Vec<Loaded<Kernel>> {
        let k = Knowledge::builtin();
        let chosen = Self::entry_file(self.default_entry().and_then(|e| e.kernel.as_ref()));
        let files: Vec<(String, Option<String>)> = match chosen {
            Some(f) if !f.eq_ignore_ascii_case("ntoskrnl.exe") => {
                let o = self.original_of(&f);
                vec![(f, o)]
            }
            _ => self
                .install
                .kernels
                .iter()
                .map(|x| (x.file.clone(), x.original_filename.clone()))
                .collect(),
        };
        files
            .into_iter()
            .map(|(file, original)| Loaded {
                variant: original.as_deref().and_then(|o| k.kernel(o)).cloned(),
                file,
                original,
            })
            .collect()
    }

    /// OriginalFilename of `System32\<file>`, when it is a readable PE image.
    fn original_of(&self, file: &str) -> Option<String> {
        let mut errors = Vec::new();
        hal::pe_of(
            self.scene,
            self.install.volume,
            &self.install.system_root,
            file,
            &mut errors,
        )?
        .version?
        .original_filename
    }
}
