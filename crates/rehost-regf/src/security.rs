//! Security descriptors as a key security cell (`sk`) holds them: self-relative, with the
//! owner, the group and the discretionary ACL at offsets from the descriptor's start.
//!
//! Sources: the msuhanov/regf specification (the `sk` cell holds a security descriptor);
//! Microsoft's documentation of `SECURITY_DESCRIPTOR_RELATIVE`, `SID`, `ACL` and
//! `ACCESS_ALLOWED_ACE` ([MS-DTYP] 2.4.2, 2.4.4.1, 2.4.5, 2.4.6) for their layout, and of
//! registry key access rights (`KEY_ALL_ACCESS`, `KEY_READ`) for the masks.

/// `SE_DACL_PRESENT`: the descriptor carries a discretionary ACL.
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// `SE_SELF_RELATIVE`: offsets, not pointers (every descriptor in a hive).
pub const SE_SELF_RELATIVE: u16 = 0x8000;
/// `ACCESS_ALLOWED_ACE_TYPE`.
pub const ACCESS_ALLOWED: u8 = 0;
/// `CONTAINER_INHERIT_ACE`: subkeys created later inherit the entry.
pub const CONTAINER_INHERIT: u8 = 0x02;
/// `KEY_ALL_ACCESS`.
pub const KEY_ALL_ACCESS: u32 = 0x000F_003F;
/// `KEY_READ`.
pub const KEY_READ: u32 = 0x0002_0019;
/// `WRITE_DAC`.
pub const WRITE_DAC: u32 = 0x0004_0000;
/// Largest descriptor a new hive takes (a descriptor's ACL sizes are 16-bit; Windows keeps
/// them far smaller).
pub const MAX_DESCRIPTOR: usize = 0x1_0000;

/// A security identifier in its binary form: revision 1, the count of sub-authorities, the
/// 48-bit authority (big-endian) and the sub-authorities.
pub fn sid(authority: u64, subs: &[u32]) -> Vec<u8> {
    let mut b = vec![1, subs.len().min(15) as u8];
    b.extend_from_slice(&authority.to_be_bytes()[2..]);
    for s in subs.iter().take(15) {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// `S-1-5-18`, Local System.
pub fn local_system() -> Vec<u8> {
    sid(5, &[18])
}

/// `S-1-5-32-544`, the built-in Administrators group.
pub fn administrators() -> Vec<u8> {
    sid(5, &[32, 544])
}

/// `S-1-5-32-545`, the built-in Users group.
pub fn users() -> Vec<u8> {
    sid(5, &[32, 545])
}

/// An access control entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// Entry type (`ACCESS_ALLOWED`, ...).
    pub kind: u8,
    /// Inheritance flags (`CONTAINER_INHERIT`, ...).
    pub flags: u8,
    /// Access mask.
    pub mask: u32,
    /// The trustee, a binary SID.
    pub sid: Vec<u8>,
}

impl Ace {
    /// An access-allowed entry.
    pub fn allow(flags: u8, mask: u32, sid: Vec<u8>) -> Ace {
        Ace {
            kind: ACCESS_ALLOWED,
            flags,
            mask,
            sid,
        }
    }
}

/// A self-relative descriptor laid out as Windows lays out a hive's: the 20-byte header,
/// the DACL (revision 2), then the owner and the group. `control` is ORed with
/// `SE_SELF_RELATIVE | SE_DACL_PRESENT`.
pub fn descriptor(owner: &[u8], group: &[u8], dacl: &[Ace], control: u16) -> Vec<u8> {
    let mut acl = Vec::new();
    for a in dacl {
        let size = (8 + a.sid.len()) as u16;
        acl.extend_from_slice(&[a.kind, a.flags]);
        acl.extend_from_slice(&size.to_le_bytes());
        acl.extend_from_slice(&a.mask.to_le_bytes());
        acl.extend_from_slice(&a.sid);
    }
    let acl_size = (8 + acl.len()) as u16;
    let owner_at = 20 + acl_size as u32;
    let group_at = owner_at + owner.len() as u32;
    let mut b = vec![1, 0];
    b.extend_from_slice(&(control | SE_SELF_RELATIVE | SE_DACL_PRESENT).to_le_bytes());
    for field in [owner_at, group_at, 0, 20] {
        b.extend_from_slice(&field.to_le_bytes());
    }
    b.extend_from_slice(&[2, 0]);
    b.extend_from_slice(&acl_size.to_le_bytes());
    b.extend_from_slice(&(dacl.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&acl);
    b.extend_from_slice(owner);
    b.extend_from_slice(group);
    b
}

/// The descriptor a new hive's root gets unless told otherwise, in SDDL
/// `O:BAG:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)`: owned by Administrators, full
/// control for Local System and Administrators, read for Users, each inherited by subkeys.
pub fn default_descriptor() -> Vec<u8> {
    descriptor(
        &administrators(),
        &local_system(),
        &[
            Ace::allow(CONTAINER_INHERIT, KEY_ALL_ACCESS, local_system()),
            Ace::allow(CONTAINER_INHERIT, KEY_ALL_ACCESS, administrators()),
            Ace::allow(CONTAINER_INHERIT, KEY_READ, users()),
        ],
        0,
    )
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// The length of the SID at `o`, when one lies wholly within `b`.
fn sid_len(b: &[u8], o: usize) -> Option<usize> {
    let count = *b.get(o + 1)? as usize;
    let len = 8 + 4 * count;
    (*b.get(o)? == 1 && count <= 15 && o.checked_add(len)? <= b.len()).then_some(len)
}

/// Whether the ACL at `o` lies within `b` with each of its entries inside it.
fn acl_ok(b: &[u8], o: usize) -> bool {
    let (Some(rev), Some(size), Some(count)) = (b.get(o), u16_at(b, o + 2), u16_at(b, o + 4))
    else {
        return false;
    };
    let end = o + size as usize;
    if !matches!(rev, 2 | 4) || size < 8 || end > b.len() {
        return false;
    }
    let mut p = o + 8;
    for _ in 0..count {
        match u16_at(b, p + 2) {
            Some(s) if s >= 8 && p + s as usize <= end => p += s as usize,
            _ => return false,
        }
    }
    true
}

/// Whether `b` is a self-relative security descriptor whose owner, group and ACLs (those it
/// names) all lie within it: what a key security cell must hold. An owner and a group are
/// required (Windows gives every key both).
pub fn valid(b: &[u8]) -> bool {
    let Some(control) = u16_at(b, 2) else {
        return false;
    };
    if b.len() < 20 || b.len() > MAX_DESCRIPTOR || b[0] != 1 || control & SE_SELF_RELATIVE == 0 {
        return false;
    }
    let field = |at: usize| u32_at(b, at).map(|v| v as usize).unwrap_or(usize::MAX);
    let (owner, group, sacl, dacl) = (field(4), field(8), field(12), field(16));
    let inside = |o: usize| (20..b.len()).contains(&o);
    let sid_ok = |o: usize| inside(o) && sid_len(b, o).is_some();
    let acl_at = |o: usize| o == 0 || (inside(o) && acl_ok(b, o));
    sid_ok(owner) && sid_ok(group) && acl_at(sacl) && acl_at(dacl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_descriptor_is_valid_and_laid_out_like_windows_own() {
        let d = default_descriptor();
        assert!(valid(&d));
        // Header, then the DACL at 0x14 (as in the root descriptors of Windows' hives).
        assert_eq!(&d[..4], &[1, 0, 0x04, 0x80]);
        assert_eq!(u32_at(&d, 16), Some(20));
        assert_eq!(&d[d.len() - 12..], &local_system()[..]);
    }

    #[test]
    fn damaged_descriptors_are_not_valid() {
        let d = default_descriptor();
        assert!(!valid(&d[..d.len() - 1]));
        assert!(!valid(&[]));
        let mut no_owner = d.clone();
        no_owner[4..8].fill(0);
        assert!(!valid(&no_owner));
        let mut absolute = d.clone();
        absolute[3] = 0;
        assert!(!valid(&absolute));
        let mut bad_acl = d.clone();
        bad_acl[22] = 0xFF;
        assert!(!valid(&bad_acl));
    }

    #[test]
    fn any_bytes_are_judged_without_panicking() {
        let d = default_descriptor();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = d[..(x as usize) % (d.len() + 1)].to_vec();
            if let Some(byte) = b.get_mut((x >> 20) as usize % d.len()) {
                *byte = (x >> 40) as u8;
            }
            if i % 7 == 0 {
                b = x.to_le_bytes().repeat(i % 9);
            }
            let _ = valid(&b);
        }
    }
}
