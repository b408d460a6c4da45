//! What the commands that read one image share: the session's counters on request, and how
//! sizes and volume contents are written for people. The session itself (the image opened
//! once, its layout, its file systems, the choice of volume) is the library's
//! `rehost::fs::Image`.

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
