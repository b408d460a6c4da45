//! Driver INF files: the package chosen for each Windows version and architecture, its
//! devices, services and files, from a test INF written in the format Windows setup reads
//! (UTF-8 and UTF-16 with a byte order mark); damaged text gives errors.

mod common;

use rehost::formats::inf::{decode, Inf, Target};

fn target(arch: &str, major: u32, minor: u32, build: u32) -> Target {
    Target {
        arch: arch.into(),
        major,
        minor,
        build,
        product_type: 1,
    }
}

fn viostor() -> Inf {
    let bytes = std::fs::read(common::root().join("testdata/inf/viostor.inf")).unwrap();
    Inf::parse(&decode(&bytes)).unwrap()
}

#[test]
fn the_models_section_follows_the_version_and_architecture() {
    let inf = viostor();
    let w7x86 = inf.driver(&target("x86", 6, 1, 7601)).unwrap();
    assert_eq!(w7x86.class.as_deref(), Some("SCSIAdapter"));
    assert_eq!(
        w7x86.class_guid.as_deref(),
        Some("{4D36E97B-E325-11CE-BFC1-08002BE10318}")
    );
    assert_eq!(w7x86.provider.as_deref(), Some("Rehost Test"));
    assert_eq!(
        w7x86.driver_ver.as_deref(),
        Some("08/12/2024,61.91.104.26000")
    );
    assert_eq!(w7x86.models.len(), 2);
    assert!(w7x86
        .models
        .iter()
        .all(|m| m.section == "RehostTest.NTx86.6.1"));
    assert_eq!(w7x86.models[0].install_section, "viostor_inst");
    assert_eq!(
        w7x86.models[0].description,
        "Rehost Test VirtIO Block Device"
    );
    assert_eq!(
        w7x86.models[0].ids,
        [
            "PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00",
            "PCI\\VEN_1AF4&DEV_1001"
        ]
    );
    assert_eq!(w7x86.files, ["viostor.sys"]);
    let s = &w7x86.services[0];
    assert_eq!(
        (
            s.name.as_str(),
            s.flags,
            s.service_type,
            s.start_type,
            s.error_control
        ),
        ("viostor", 2, 1, 0, 1)
    );
    assert_eq!(s.group.as_deref(), Some("SCSI miniport"));
    assert_eq!(s.binary, "%12%\\viostor.sys");
    assert_eq!(s.image_path(), "System32\\drivers\\viostor.sys");
    assert_eq!(s.add_reg.len(), 3);
    assert_eq!(s.add_reg[0].subkey, "Parameters\\PnpInterface");
    assert_eq!(
        (s.add_reg[0].kind, s.add_reg[0].data.clone()),
        (4, 1u32.to_le_bytes().to_vec())
    );
    let multi: Vec<u8> = "one\0two;not a comment\0\0"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert_eq!((s.add_reg[2].kind, s.add_reg[2].data.clone()), (7, multi));
    // Windows 7 x64 takes its own section and the x64 install section.
    let w7x64 = inf.driver(&target("amd64", 6, 1, 7601)).unwrap();
    assert!(w7x64
        .models
        .iter()
        .all(|m| m.section == "RehostTest.NTamd64.6.1"));
    assert_eq!(w7x64.models[0].install_section, "viostor_inst.NTamd64");
    assert_eq!(w7x64.services.len(), 1);
    // Windows 10 1607 and later: the build-decorated section wins; an older 10 does not
    // qualify for it.
    let w10 = inf.driver(&target("amd64", 10, 0, 19045)).unwrap();
    assert_eq!(w10.models.len(), 1);
    assert_eq!(w10.models[0].section, "RehostTest.NTamd64.10.0...14393");
    assert_eq!(
        w10.models[0].ids,
        [
            "PCI\\VEN_1AF4&DEV_1042&SUBSYS_11001AF4&REV_01",
            "PCI\\VEN_1AF4&DEV_1042"
        ]
    );
    let w10_1507 = inf.driver(&target("amd64", 10, 0, 10240)).unwrap();
    assert_eq!(w10_1507.models[0].section, "RehostTest.NTamd64.6.1");
    // XP is older than every decoration, and there is no undecorated section: nothing.
    assert!(inf
        .driver(&target("x86", 5, 1, 2600))
        .unwrap()
        .models
        .is_empty());
    assert!(inf
        .driver(&target("arm64", 10, 0, 22621))
        .unwrap()
        .models
        .is_empty());
}

#[test]
fn utf16_text_reads_like_utf8_and_damage_gives_errors() {
    if common::bounded::reran_in_child("utf16_text_reads_like_utf8_and_damage_gives_errors") {
        return;
    }
    let bytes = std::fs::read(common::root().join("testdata/inf/viostor.inf")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    let a = Inf::parse(&decode(&utf16)).unwrap();
    let t = target("x86", 6, 1, 7601);
    assert_eq!(
        format!("{:?}", a.driver(&t).unwrap().services),
        format!("{:?}", viostor().driver(&t).unwrap().services)
    );
    let broken = text.replace("[viostor_service]", "[viostor_service");
    assert!(Inf::parse(&broken)
        .unwrap_err()
        .to_string()
        .contains("closing bracket"));
    let no_type = text.replace("ServiceType    = 1", "ServiceType    = one");
    let e = Inf::parse(&no_type).unwrap().driver(&t).unwrap_err();
    assert!(e.to_string().contains("ServiceType is not a number"), "{e}");
    let no_section = text.replace("[viostor_inst]", "[elsewhere]");
    assert!(Inf::parse(&no_section)
        .unwrap()
        .driver(&t)
        .unwrap_err()
        .to_string()
        .contains("no install section"));
    // Random bytes and seeded mutations never panic.
    let mut rng = common::Rng(0x1f_5eed);
    for _ in 0..500 {
        let mut m = text.clone().into_bytes();
        for _ in 0..1 + rng.below(10) {
            let at = rng.below(m.len() as u64) as usize;
            m[at] = rng.next() as u8;
        }
        if let Ok(inf) = Inf::parse(&decode(&m)) {
            let _ = inf.driver(&t);
        }
    }
}
