//! The time rehost stamps on what it writes (NTFS file times, hive key times).
//!
//! `SOURCE_DATE_EPOCH` (seconds since 1970, the reproducible-builds convention), when set
//! to a number, stands for "now": the same fix of the same image then writes the same
//! bytes, whichever container it is written into and whenever it runs.

/// 100-nanosecond intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// Now (or `SOURCE_DATE_EPOCH`) as a FILETIME: 100 ns intervals since 1601-01-01 UTC.
pub fn filetime_now() -> u64 {
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return secs
            .saturating_mul(10_000_000)
            .saturating_add(FILETIME_UNIX_EPOCH);
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() / 100)
        .unwrap_or(0);
    u64::try_from(since)
        .unwrap_or(u64::MAX)
        .saturating_add(FILETIME_UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_2020() {
        // 2020-01-01 as a FILETIME.
        assert!(super::filetime_now() > 132_223_104_000_000_000);
    }
}
