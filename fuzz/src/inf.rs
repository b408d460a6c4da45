//! Any bytes as a driver INF: decoded (UTF-16 or ANSI), parsed, and read for what it
//! installs on a few Windows versions and architectures.

use rehost::formats::inf::{self, Inf, Target};

/// The target's body.
pub fn run(data: &[u8]) {
    let text = inf::decode(data);
    let Ok(inf) = Inf::parse(&text) else {
        return;
    };
    let _ = inf.value("Version", "Class");
    for (arch, major, minor, build) in [
        ("x86", 5, 1, 2600),
        ("amd64", 6, 1, 7601),
        ("amd64", 10, 0, 19045),
        ("arm64", 10, 0, 22631),
    ] {
        let t = Target {
            arch: arch.into(),
            major,
            minor,
            build,
            product_type: 1,
        };
        if let Ok(d) = inf.driver(&t) {
            for s in &d.services {
                let _ = (s.binary_file(), s.image_path());
            }
        }
    }
}
