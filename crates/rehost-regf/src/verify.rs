//! Reading an edited hive back through an independent parser (nt-hive) before the edit is
//! accepted: the hive must validate as a whole, and every key the edit touched must read
//! the same through nt-hive as through rehost's own cell reader (or be absent in both).

use super::apply::Touched;
use super::cells::Cells;
use std::collections::BTreeMap;

use crate::Error;
use crate::Error::Rejected;

/// Values of a key by lower-cased name: (type, data); subkey names lower-cased.
type Read = (BTreeMap<String, (u32, Vec<u8>)>, Vec<String>);

fn ours(hive: &[u8], path: &str) -> Result<Option<Read>, Error> {
    let bad = |e: Error| Rejected(format!("{path}: {e}"));
    let c = Cells::new(hive);
    let root = c.root(hive).map_err(bad)?;
    let Some(k) = c.find(&root, path).map_err(bad)? else {
        return Ok(None);
    };
    let mut values = BTreeMap::new();
    for v in c.values(&k).map_err(bad)? {
        let vk = c.vk(v).map_err(bad)?;
        let data = c.data(&vk).map_err(bad)?;
        values.insert(vk.name.to_lowercase(), (vk.kind, data));
    }
    let mut subkeys = Vec::new();
    for s in c.subkeys(&k).map_err(bad)? {
        subkeys.push(c.nk(s).map_err(bad)?.name.to_lowercase());
    }
    Ok(Some((values, subkeys)))
}

fn theirs(h: &nt_hive::Hive<&[u8]>, path: &str) -> Result<Option<Read>, Error> {
    let bad = |e: nt_hive::NtHiveError| Rejected(format!("nt-hive at {path}: {e}"));
    let root = h.root_key_node().map_err(bad)?;
    let trimmed = path.trim_matches('\\');
    let k = if trimmed.is_empty() {
        root
    } else {
        match root.subpath(trimmed) {
            None => return Ok(None),
            Some(k) => k.map_err(bad)?,
        }
    };
    let mut values = BTreeMap::new();
    if let Some(list) = k.values() {
        for v in list.map_err(bad)? {
            let v = v.map_err(bad)?;
            let name = v.name().map_err(bad)?.to_string_lossy().to_lowercase();
            let kind = v.data_type().map(|t| t as u32).ok();
            let data = v.data().map_err(bad)?.into_vec().map_err(bad)?;
            // nt-hive names only the types up to REG_QWORD: compare the others by data.
            values.insert(name, (kind.unwrap_or(u32::MAX), data));
        }
    }
    let mut subkeys = Vec::new();
    if let Some(list) = k.subkeys() {
        for s in list.map_err(bad)? {
            let s = s.map_err(bad)?;
            subkeys.push(s.name().map_err(bad)?.to_string_lossy().to_lowercase());
        }
    }
    Ok(Some((values, subkeys)))
}

/// Validates `hive` with nt-hive and compares every touched key (and, for a touched
/// subtree, its direct subkeys) as both parsers read it; a difference is an
/// [`Error::Rejected`] saying what each read.
pub fn read_back(hive: &[u8], touched: &[Touched]) -> Result<(), Error> {
    let h = nt_hive::Hive::new(hive).map_err(|e| Rejected(format!("nt-hive: {e}")))?;
    for (path, _) in touched {
        let a = ours(hive, path)?;
        let b = theirs(&h, path)?;
        let same = match (&a, &b) {
            (None, None) => true,
            (Some((va, sa)), Some((vb, sb))) => {
                sa == sb
                    && va.len() == vb.len()
                    && va.iter().all(|(n, (t, d))| {
                        vb.get(n)
                            .is_some_and(|(tb, db)| db == d && (*tb == *t || *tb == u32::MAX))
                    })
            }
            _ => false,
        };
        if !same {
            return Err(Rejected(format!(
                "{path}: rehost reads {}, nt-hive reads {}",
                describe(&a),
                describe(&b)
            )));
        }
    }
    Ok(())
}

fn describe(r: &Option<Read>) -> String {
    match r {
        None => "no key".into(),
        Some((v, s)) => format!("{} values and {} subkeys", v.len(), s.len()),
    }
}
