//! A new, empty hive: a base block and one hive bin holding the root key node, its security
//! cell and free space; the [`Editor`] then adds keys and values to it and saves it.
//!
//! The layout follows the msuhanov/regf specification ("Base block", "Hive bin", "Key
//! node", "Key security") and what Windows' own new hives hold: the root key node at cell
//! offset 0x20 flagged `KEY_HIVE_ENTRY | KEY_NO_DELETE` (and `KEY_COMP_NAME` for a Latin-1
//! name), then the one security cell, whose list links to itself, referenced once.

use super::alloc::{HBIN_ALIGN, HBIN_HEADER};
use super::base::{checksum, put_u32, BASE};
use super::cells::{KEY_COMP_NAME, NONE};
use super::edit::{err, filetime_now, nk, Editor, R};
use super::{names, security};

/// Key node flag: the root key of its hive.
pub const KEY_HIVE_ENTRY: u16 = 0x0004;
/// Key node flag: the key cannot be deleted.
pub const KEY_NO_DELETE: u16 = 0x0008;
/// Cell offset of the root key node in a new hive (the first cell of the first bin).
pub const ROOT_CELL: u32 = HBIN_HEADER;
/// UTF-16 code units the base block's file name field holds, its terminating NUL included.
pub const FILE_NAME_UNITS: usize = 32;

/// What a new hive is made of.
#[derive(Debug, Clone)]
pub struct NewHive {
    /// The root key's name (`NewStoreRoot` for a BCD store, `CMI-CreateHive{...}` for
    /// Windows' own).
    pub root_name: String,
    /// Minor version of the format, 3 to 6 (1.3 for a BCD store, 1.5 for Windows 10's
    /// hives): it decides the subkey lists (`lf` below 1.5, `lh` from it) and big data.
    pub minor: u32,
    /// The base block's file name field, kept for debugging by Windows: the tail of the
    /// file's path (its last 31 UTF-16 code units, as Windows keeps them).
    pub file_name: String,
    /// The root's self-relative security descriptor, which every key added later shares.
    pub security: Vec<u8>,
    /// Last written timestamp of the base block, the first bin and the root (a FILETIME).
    pub timestamp: u64,
}

impl NewHive {
    /// A hive with the root `root_name` at version 1.`minor`, the default descriptor
    /// ([`security::default_descriptor`]), no file name, written now.
    pub fn new(root_name: &str, minor: u32) -> NewHive {
        NewHive {
            root_name: root_name.into(),
            minor,
            file_name: String::new(),
            security: security::default_descriptor(),
            timestamp: filetime_now(),
        }
    }

    /// The hive file. Refused: a root name that is no key name, a version other than 1.3
    /// to 1.6, a descriptor that is not a valid self-relative one.
    pub fn bytes(&self) -> R<Vec<u8>> {
        if !names::valid_key_name(&self.root_name) {
            return err(ROOT_CELL, format!("{:?} is not a key name", self.root_name));
        }
        if !(3..=6).contains(&self.minor) {
            return err(
                0,
                format!("hive version 1.{} is not one rehost writes", self.minor),
            );
        }
        if !security::valid(&self.security) {
            return err(ROOT_CELL, "not a valid self-relative security descriptor");
        }
        let (name, latin1) = names::encode(&self.root_name);
        let nk_size = cell_size(nk::NAME + name.len());
        let sk_cell = ROOT_CELL + nk_size;
        let sk_size = cell_size(SK_DESCRIPTOR + self.security.len());
        let used = HBIN_HEADER + nk_size + sk_size;
        let bin = used.div_ceil(HBIN_ALIGN) * HBIN_ALIGN;
        let mut b = vec![0u8; BASE + bin as usize];
        self.base_block(&mut b[..BASE], bin);
        let h = &mut b[BASE..];
        h[..4].copy_from_slice(b"hbin");
        put_u32(h, 8, bin);
        h[20..28].copy_from_slice(&self.timestamp.to_le_bytes());
        let root = cell(h, ROOT_CELL, nk_size);
        root[..2].copy_from_slice(b"nk");
        let flags = KEY_HIVE_ENTRY | KEY_NO_DELETE | if latin1 { KEY_COMP_NAME } else { 0 };
        root[2..4].copy_from_slice(&flags.to_le_bytes());
        root[nk::TIMESTAMP..nk::TIMESTAMP + 8].copy_from_slice(&self.timestamp.to_le_bytes());
        // The root has no parent: the null cell (the field is not read for the root).
        for at in [
            nk::PARENT,
            nk::SUBKEY_LIST,
            nk::VOLATILE_LIST,
            nk::VALUE_LIST,
            nk::CLASS,
        ] {
            put_u32(root, at, NONE);
        }
        put_u32(root, nk::SECURITY, sk_cell);
        root[nk::NAME_LEN..nk::NAME_LEN + 2].copy_from_slice(&(name.len() as u16).to_le_bytes());
        root[nk::NAME..nk::NAME + name.len()].copy_from_slice(&name);
        let sk = cell(h, sk_cell, sk_size);
        sk[..2].copy_from_slice(b"sk");
        // The only descriptor of the hive: its list's head and only entry.
        put_u32(sk, 4, sk_cell);
        put_u32(sk, 8, sk_cell);
        put_u32(sk, 12, 1);
        put_u32(sk, 16, self.security.len() as u32);
        sk[SK_DESCRIPTOR..SK_DESCRIPTOR + self.security.len()].copy_from_slice(&self.security);
        if used < bin {
            put_u32(h, used as usize, bin - used);
        }
        Ok(b)
    }

    fn base_block(&self, b: &mut [u8], bins: u32) {
        b[..4].copy_from_slice(b"regf");
        // Equal sequence numbers: a clean hive.
        put_u32(b, 4, 1);
        put_u32(b, 8, 1);
        b[12..20].copy_from_slice(&self.timestamp.to_le_bytes());
        put_u32(b, 20, 1);
        put_u32(b, 24, self.minor);
        // File type 0, primary; format 1, direct memory load.
        put_u32(b, 28, 0);
        put_u32(b, 32, 1);
        put_u32(b, 36, ROOT_CELL);
        put_u32(b, 40, bins);
        // Clustering factor: 512-byte sectors.
        put_u32(b, 44, 1);
        let units: Vec<u16> = self.file_name.encode_utf16().collect();
        let tail = &units[units.len().saturating_sub(FILE_NAME_UNITS - 1)..];
        for (i, u) in tail.iter().enumerate() {
            b[48 + i * 2..50 + i * 2].copy_from_slice(&u.to_le_bytes());
        }
        let sum = checksum(b);
        put_u32(b, 508, sum);
    }
}

/// Offset of the descriptor in a security cell's data.
const SK_DESCRIPTOR: usize = 20;

/// Size of a cell holding `data` bytes: its size field included, a multiple of 8.
fn cell_size(data: usize) -> u32 {
    ((4 + data + 7) & !7) as u32
}

/// Marks the cell at `offset` of the hive bins `h` allocated (`size` bytes) and returns
/// its data.
fn cell(h: &mut [u8], offset: u32, size: u32) -> &mut [u8] {
    let o = offset as usize;
    put_u32(h, o, (size as i32).wrapping_neg() as u32);
    &mut h[o + 4..o + size as usize]
}

impl Editor {
    /// A new, empty hive (see [`NewHive::new`]) open for editing.
    pub fn create(root_name: &str, minor: u32) -> R<Editor> {
        Editor::create_from(&NewHive::new(root_name, minor))
    }

    /// The hive `spec` describes, open for editing; keys and values added to it are
    /// stamped with its timestamp, as is the file [`Editor::save`] writes.
    pub fn create_from(spec: &NewHive) -> R<Editor> {
        let mut editor = Editor::open(spec.bytes()?)?;
        editor.bins.now = spec.timestamp;
        Ok(editor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{u32_at, BaseBlock};
    use crate::cells::Cells;

    #[test]
    fn a_new_hive_is_clean_with_its_root_and_self_linked_security_cell() {
        let mut spec = NewHive::new("NewStoreRoot", 3);
        spec.file_name = "\\Device\\HarddiskVolume1\\EFI\\Microsoft\\Boot\\BCD".into();
        let b = spec.bytes().unwrap();
        assert_eq!(b.len(), 8192);
        let base = BaseBlock::read(&b).unwrap();
        assert!(!base.dirty());
        assert_eq!((u32_at(&b, 20), u32_at(&b, 24), u32_at(&b, 44)), (1, 3, 1));
        // The last 31 code units of the path and a NUL, as Windows keeps them.
        let name: Vec<u16> = b[48..112]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(
            String::from_utf16_lossy(&name),
            "kVolume1\\EFI\\Microsoft\\Boot\\BCD\0"
        );
        let c = Cells::new(&b);
        let root = c.root(&b).unwrap();
        assert_eq!((root.name.as_str(), root.flags), ("NewStoreRoot", 0x2C));
        let sk = c.cell(root.security).unwrap();
        assert_eq!(&sk[..2], b"sk");
        assert_eq!(
            (u32_at(sk, 4), u32_at(sk, 8), u32_at(sk, 12)),
            (root.security, root.security, 1)
        );
        let ed = Editor::open(b).unwrap();
        assert_eq!(ed.check().unwrap(), 1);
        assert_eq!(ed.free_bytes(), 4096 - 32 - 96 - 152);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(Editor::create("a\\b", 5).is_err());
        assert!(Editor::create("", 5).is_err());
        assert!(Editor::create("root", 7).is_err());
        assert!(Editor::create("root", 2).is_err());
        let mut spec = NewHive::new("root", 5);
        spec.security = vec![1, 0, 4, 0x80];
        assert!(spec.bytes().is_err());
    }

    #[test]
    fn a_large_descriptor_gets_a_larger_first_bin_and_a_unicode_root_name_is_utf16() {
        let mut spec = NewHive::new("Wurzel\u{3042}", 5);
        let aces: Vec<_> = (0..300)
            .map(|i| security::Ace::allow(0, security::KEY_READ, security::sid(5, &[32, i])))
            .collect();
        spec.security = security::descriptor(
            &security::administrators(),
            &security::local_system(),
            &aces,
            0,
        );
        let mut ed = Editor::create_from(&spec).unwrap();
        ed.create_key("a\\b").unwrap();
        ed.set_value("a\\b", "v", 1, b"x\0").unwrap();
        let b = ed.save();
        let c = Cells::new(&b);
        let root = c.root(&b).unwrap();
        assert_eq!(root.name, "Wurzel\u{3042}");
        assert_eq!(root.flags, KEY_HIVE_ENTRY | KEY_NO_DELETE);
        assert_eq!(u32_at(&b, 4096 + 8), 8192);
        assert_eq!(u32_at(c.cell(root.security).unwrap(), 12), 3);
    }
}
