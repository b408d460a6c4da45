//! Any bytes as a hive and up to two transaction logs, separated by [`LOG_SEP`]: the logs
//! replayed over the primary when it is dirty, the hive read through nt-hive, and its
//! first keys and values listed.

use rehost::formats::hive::Hive;
use rehost::formats::regf::Log;

/// What separates the primary file from each log in an input.
pub const LOG_SEP: &[u8] = b"\n--rehost-fuzz-log--\n";

/// The target's body.
pub fn run(data: &[u8]) {
    let parts = super::split(data, LOG_SEP);
    let names = ["FUZZ.LOG1", "FUZZ.LOG2"];
    let logs: Vec<Log> = parts[1..]
        .iter()
        .zip(names)
        .map(|(bytes, name)| Log { name, bytes })
        .collect();
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Hive);
    let _ = Hive::parse(parts[0].to_vec(), ctx.clone());
    let Ok(hive) = Hive::parse_with_logs(parts[0].to_vec(), &logs, ctx) else {
        return;
    };
    let _ = (hive.dirty(), hive.replayed());
    let mut todo = vec![String::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        let _ = hive.values(&path);
        if let Ok(keys) = hive.subkeys(&path) {
            for k in keys.into_iter().take(8) {
                todo.push(if path.is_empty() {
                    k
                } else {
                    format!("{path}\\{k}")
                });
            }
        }
    }
}
