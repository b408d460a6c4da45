//! A small VHDX writer for tests: differencing disks, 4 KiB logical sectors and log entries,
//! which no packaged tool creates. Layout: headers, region tables, log at 1 MiB (1 MiB
//! long), BAT at 2 MiB, metadata at 3 MiB, blocks from 4 MiB on.

const MB: usize = 1 << 20;

/// A GUID from 16 bytes, in the mixed-endian form the format stores.
pub fn guid_text(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes_le(*b).to_string()
}

fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
fn put_guid(b: &mut [u8], o: usize, text: &str) {
    let u = uuid::Uuid::parse_str(text).unwrap();
    b[o..o + 16].copy_from_slice(&u.to_bytes_le());
}
fn seal(b: &mut [u8], at: usize) {
    b[at..at + 4].fill(0);
    let c = crc32c::crc32c(b);
    b[at..at + 4].copy_from_slice(&c.to_le_bytes());
}

/// One block of the disk.
pub struct Block {
    /// Payload block number.
    pub index: u64,
    /// BAT state (6 fully present, 7 partially present, 0 not present, 2 zero).
    pub state: u64,
    /// Block contents (block_size bytes) for present states.
    pub data: Option<Vec<u8>>,
}

/// A disk to write.
pub struct VhdxSpec {
    pub virtual_size: u64,
    pub block_size: u32,
    pub logical_sector: u32,
    pub blocks: Vec<Block>,
    /// Sector bitmap of chunk 0 (differencing disks), one bit per logical sector.
    pub bitmap: Option<Vec<u8>>,
    /// DataWriteGuid of this disk.
    pub data_write_guid: String,
    /// Parent: (parent's DataWriteGuid, relative path as Windows writes it).
    pub parent: Option<(String, String)>,
}

/// A log update: 4 KiB of `page` to be written at file offset `offset`.
pub struct LogWrite {
    pub offset: u64,
    pub page: Vec<u8>,
}

impl VhdxSpec {
    /// The file's bytes (without a log).
    pub fn build(&self) -> Vec<u8> {
        let bs = self.block_size as usize;
        let chunk_ratio = ((1u64 << 23) * self.logical_sector as u64) / self.block_size as u64;
        let payload = self.virtual_size.div_ceil(self.block_size as u64);
        let chunks = payload.div_ceil(chunk_ratio);
        let entries = if self.parent.is_some() {
            chunks * (chunk_ratio + 1)
        } else {
            payload + (payload - 1) / chunk_ratio
        };
        let bat_len = (entries as usize * 8).div_ceil(MB) * MB;
        let meta_at = 2 * MB + bat_len;
        let mut next = meta_at + MB;
        let mut f = vec![0u8; next];
        f[..8].copy_from_slice(b"vhdxfile");
        // Headers: the second is current.
        for (i, at) in [64 * 1024, 128 * 1024].iter().enumerate() {
            let h = &mut f[*at..*at + 4096];
            h[..4].copy_from_slice(b"head");
            put64(h, 8, 10 + i as u64);
            put_guid(h, 16, "11111111-2222-3333-4444-555555555555");
            put_guid(h, 32, &self.data_write_guid);
            h[66..68].copy_from_slice(&1u16.to_le_bytes());
            put32(h, 68, MB as u32);
            put64(h, 72, MB as u64);
            seal(h, 4);
        }
        for at in [192 * 1024, 256 * 1024] {
            let r = &mut f[at..at + 64 * 1024];
            r[..4].copy_from_slice(b"regi");
            put32(r, 8, 2);
            put_guid(r, 16, "2dc27766-f623-4200-9d64-115e9bfd4a08");
            put64(r, 32, 2 * MB as u64);
            put32(r, 40, bat_len as u32);
            put32(r, 44, 1);
            put_guid(r, 48, "8b7ca206-4790-4b9a-b8fe-575f050f886e");
            put64(r, 64, meta_at as u64);
            put32(r, 72, MB as u32);
            put32(r, 76, 1);
            seal(r, 4);
        }
        // Metadata table and items.
        let mut items: Vec<(&str, Vec<u8>)> = vec![
            ("caa16737-fa36-4d43-b3b6-33f0aa44e76b", {
                let mut v = vec![0u8; 8];
                put32(&mut v, 0, self.block_size);
                put32(&mut v, 4, if self.parent.is_some() { 2 } else { 0 });
                v
            }),
            (
                "2fa54224-cd1b-4876-b211-5dbed83bf4b8",
                self.virtual_size.to_le_bytes().to_vec(),
            ),
            ("beca12ab-b2e6-4523-93ef-c309e000c746", {
                let mut v = vec![0u8; 16];
                put_guid(&mut v, 0, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
                v
            }),
            (
                "8141bf1d-a96f-4709-ba47-f233a8faab5f",
                self.logical_sector.to_le_bytes().to_vec(),
            ),
            (
                "cda348c7-445d-4471-9cc9-e9885251c556",
                4096u32.to_le_bytes().to_vec(),
            ),
        ];
        if let Some((linkage, rel)) = &self.parent {
            let name = rel.rsplit('\\').next().unwrap_or(rel);
            let pairs = [
                ("parent_linkage", format!("{{{linkage}}}")),
                ("relative_path", rel.clone()),
                ("absolute_win32_path", format!("\\\\?\\C:\\VMs\\{name}")),
            ];
            let mut v = vec![0u8; 20 + 12 * pairs.len()];
            put_guid(&mut v, 0, "b04aefb7-d19e-4a81-b789-25b8e9445913");
            v[18..20].copy_from_slice(&(pairs.len() as u16).to_le_bytes());
            for (i, (k, val)) in pairs.iter().enumerate() {
                let kb: Vec<u8> = k.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
                let vb: Vec<u8> = val.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
                let (ko, vo) = (v.len(), v.len() + kb.len());
                let o = 20 + 12 * i;
                put32(&mut v, o, ko as u32);
                put32(&mut v, o + 4, vo as u32);
                v[o + 8..o + 10].copy_from_slice(&(kb.len() as u16).to_le_bytes());
                v[o + 10..o + 12].copy_from_slice(&(vb.len() as u16).to_le_bytes());
                v.extend_from_slice(&kb);
                v.extend_from_slice(&vb);
            }
            items.push(("a8d35f2d-b30b-454d-abf7-d3d84834ab0c", v));
        }
        {
            let t = &mut f[meta_at..meta_at + MB];
            t[..8].copy_from_slice(b"metadata");
            t[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
            let mut off = 64 * 1024;
            for (i, (id, v)) in items.iter().enumerate() {
                let o = 32 + 32 * i;
                put_guid(t, o, id);
                put32(t, o + 16, off as u32);
                put32(t, o + 20, v.len() as u32);
                put32(t, o + 24, 4);
                t[off..off + v.len()].copy_from_slice(v);
                off += v.len().div_ceil(8) * 8;
            }
        }
        // Blocks and the BAT.
        let mut bat = vec![0u8; entries as usize * 8];
        for b in &self.blocks {
            let idx = (b.index + b.index / chunk_ratio) as usize;
            let mut entry = b.state;
            if let Some(data) = &b.data {
                entry |= (next as u64 >> 20) << 20;
                f.resize(next + bs, 0);
                f[next..next + data.len()].copy_from_slice(data);
                next += bs;
            }
            put64(&mut bat, idx * 8, entry);
        }
        if let Some(bits) = &self.bitmap {
            let idx = chunk_ratio as usize;
            put64(&mut bat, idx * 8, 6 | ((next as u64 >> 20) << 20));
            f.resize(next + MB, 0);
            f[next..next + bits.len()].copy_from_slice(bits);
        }
        f[2 * MB..2 * MB + bat.len()].copy_from_slice(&bat);
        f
    }
}

/// Adds a log of one entry holding `writes` to a built file, and sets the current header's
/// LogGuid so that a reader must replay it.
pub fn add_log(f: &mut [u8], writes: &[LogWrite], sequence: u64) {
    let log_guid = "99999999-8888-7777-6666-555555555555";
    let desc_sectors = 1usize;
    let len = (desc_sectors + writes.len()) * 4096;
    let mut e = vec![0u8; len];
    e[..4].copy_from_slice(b"loge");
    put32(&mut e, 8, len as u32);
    put32(&mut e, 12, 0);
    put64(&mut e, 16, sequence);
    put32(&mut e, 24, writes.len() as u32);
    put_guid(&mut e, 32, log_guid);
    put64(&mut e, 48, f.len() as u64);
    put64(&mut e, 56, f.len().div_ceil(MB) as u64 * MB as u64);
    for (i, w) in writes.iter().enumerate() {
        let d = 64 + 32 * i;
        e[d..d + 4].copy_from_slice(b"desc");
        e[d + 4..d + 8].copy_from_slice(&w.page[4092..4096]);
        e[d + 8..d + 16].copy_from_slice(&w.page[..8]);
        put64(&mut e, d + 16, w.offset);
        put64(&mut e, d + 24, sequence);
        let s = (desc_sectors + i) * 4096;
        e[s..s + 4096].copy_from_slice(&w.page);
        e[s..s + 4].copy_from_slice(b"data");
        put32(&mut e, s + 4, (sequence >> 32) as u32);
        put32(&mut e, s + 4092, sequence as u32);
    }
    seal(&mut e, 4);
    f[MB..MB + len].copy_from_slice(&e);
    let h = &mut f[128 * 1024..128 * 1024 + 4096];
    put_guid(h, 48, log_guid);
    seal(h, 4);
}
