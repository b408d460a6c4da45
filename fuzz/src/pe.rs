//! Any bytes as a PE image (a driver, a HAL, a kernel): headers, imports, exports and the
//! version resource.

/// The target's body.
pub fn run(data: &[u8]) {
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Pe);
    if let Ok(info) = rehost::formats::pe::parse(data, &ctx, "\\Windows\\fuzz.sys") {
        let _ = info.version.as_ref().map(|v| v.build());
    }
}
