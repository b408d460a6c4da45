//! Windows versions as the registry gives them ("5.2", "6.1", "10.0"), ordered.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A Windows NT version: major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// 5, 6, 10.
    pub major: u32,
    /// 0 to 3.
    pub minor: u32,
}

impl Version {
    /// Windows 8 / Server 2012: StartOverride and DriverDatabase, no CriticalDeviceDatabase.
    pub const WIN8: Version = Version { major: 6, minor: 2 };
    /// Windows Vista / Server 2008.
    pub const VISTA: Version = Version { major: 6, minor: 0 };

    /// Parses "6.1" (and "6.1.7601", keeping the first two parts).
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next().unwrap_or("0").parse().ok()?;
        Some(Version { major, minor })
    }

    /// NT 5.x: 2000, XP, Server 2003.
    pub fn nt5(self) -> bool {
        self.major == 5
    }

    /// The releases of this version, for messages.
    pub fn releases(self) -> &'static str {
        match (self.major, self.minor) {
            (5, 0) => "Windows 2000",
            (5, 1) => "Windows XP",
            (5, 2) => "Windows Server 2003 / XP x64",
            (6, 0) => "Windows Vista / Server 2008",
            (6, 1) => "Windows 7 / Server 2008 R2",
            (6, 2) => "Windows 8 / Server 2012",
            (6, 3) => "Windows 8.1 / Server 2012 R2",
            (10, 0) => "Windows 10 / 11 / Server 2016 and later",
            _ => "this Windows version",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a Windows version: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn versions_order_and_parse() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("5.2") < v("6.0"));
        assert!(v("6.3") < v("10.0"));
        assert_eq!(v("6.1.7601"), v("6.1"));
        assert_eq!(v("10"), v("10.0"));
        assert!(Version::parse("x").is_none());
        assert!(v("6.2") >= Version::WIN8);
    }
}
