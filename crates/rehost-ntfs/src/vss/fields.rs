//! Field forms the VSS structures share: GUIDs and FILETIME stamps.

/// A GUID at `off` as Windows prints it (lower case, no braces).
pub use rehost_core::le::guid as guid_at;

/// FILETIME ticks (100 ns) from 1601-01-01 to 1970-01-01.
use rehost_core::time::FILETIME_UNIX_EPOCH as UNIX_EPOCH_TICKS;

/// A FILETIME (100 ns ticks since 1601-01-01, UTC) as ISO 8601 in UTC with its seven
/// fractional digits: `2013-12-03T06:35:09.7363787Z`. Times before 1970 are written too.
pub fn filetime_utc(ft: u64) -> String {
    let secs = (ft / 10_000_000) as i64 - (UNIX_EPOCH_TICKS / 10_000_000) as i64;
    let frac = ft % 10_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:07}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (negative: before). Counts whole
/// 400-year eras of 146,097 days, then years in the era with March as the first month, so
/// that the leap day falls at the end of a year.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of the era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_mixed_endian() {
        let b = [
            0x6b, 0x87, 0x08, 0x38, 0x76, 0xc1, 0x48, 0x4e, 0xb7, 0xae, 0x04, 0x04, 0x6e, 0x6c,
            0xc7, 0x52,
        ];
        assert_eq!(guid_at(&b, 0), "3808876b-c176-4e48-b7ae-04046e6cc752");
        assert_eq!(guid_at(&b, 8), "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn filetimes_read_as_utc_dates() {
        assert_eq!(
            filetime_utc(UNIX_EPOCH_TICKS),
            "1970-01-01T00:00:00.0000000Z"
        );
        assert_eq!(filetime_utc(0), "1601-01-01T00:00:00.0000000Z");
        // 2000-02-29 (a leap day of a century divisible by 400), 12:34:56.5
        assert_eq!(
            filetime_utc(125_963_012_965_000_000),
            "2000-02-29T12:34:56.5000000Z"
        );
        assert_eq!(
            filetime_utc(130_305_261_097_363_787),
            "2013-12-03T06:35:09.7363787Z"
        );
        assert!(filetime_utc(u64::MAX).ends_with("Z"));
    }
}
