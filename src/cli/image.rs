//! What the commands that read one image share: the session's counters on request, and how
//! sizes and volume contents are written for people. The session itself (the image opened
//! once, its layout, its file systems, the choice of volume) is the library's
//! `rehost::fs::Image`.

use rehost::fs::ntfs::vss::ShadowCopies;
use rehost::fs::Image;

/// Prints the bytes read so far, when asked.
pub fn report_stats(img: &Image, asked: bool) {
    if asked {
        let s = img.stats();
        eprintln!(
            "stats: read {} bytes in {} reads from {}",
            s.bytes(),
            s.reads(),
            img.name()
        );
    }
}

/// A size in binary units, one decimal.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A shadow copy's creation time for people: `2013-12-03 06:35:09 UTC`.
fn made(iso: &str) -> String {
    let (date, time) = iso.split_once('T').unwrap_or((iso, ""));
    let secs = time.split(['.', 'Z']).next().unwrap_or("");
    format!("{date} {secs} UTC")
}

/// The lines that tell a volume's shadow copies (Volume Shadow Copy snapshots): how many,
/// and per copy when it was made, its store's size and its identifier; a damaged catalog
/// or store said as such.
pub fn shadow_copy_lines(s: &ShadowCopies) -> Vec<String> {
    let mut out = Vec::new();
    let n = s.count();
    out.push(match (n, &s.damaged) {
        (0, None) => "no shadow copies (the VSS volume header names no catalog)".to_string(),
        (n, _) => format!(
            "{n} shadow cop{} (Volume Shadow Copy snapshots; a write in place leaves {} stale)",
            if n == 1 { "y" } else { "ies" },
            if n == 1 { "it" } else { "them" }
        ),
    });
    for (i, c) in s.copies.iter().enumerate() {
        let size = c
            .store_size
            .map(|b| format!("store {} ({b} bytes)", human(b)))
            .unwrap_or_else(|| "store size unknown".to_string());
        let id = c.shadow_copy_id.as_deref().unwrap_or(&c.store_id);
        let mut line = format!(
            "shadow copy {}: made {}, {size}, id {{{id}}}",
            i + 1,
            made(&c.created)
        );
        if let Some(d) = &c.damaged {
            line.push_str(&format!("; damaged: {d}"));
        }
        out.push(line);
    }
    if let Some(d) = &s.damaged {
        out.push(format!(
            "the shadow copy catalog is damaged: {d} (the copies listed are those read before)"
        ));
    }
    out
}
