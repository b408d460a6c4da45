//! `rehost report` held to the ledgers it reads: every number of its JSON, and of its HTML
//! page as headless Chromium renders it (its script run), equal to the same count taken
//! from the ledgers by SQL here; the page's screenshot is left in `out_dir`.

use super::{have_tool, rehost_command};
use rusqlite::Connection;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Counts by SQL over the ledgers: for `command`, each image's latest outcome, then
/// `select` (columns k1[, k2], n) grouped over those outcomes.
pub fn sql_counts(ledgers: &[&Path], command: &str, select: &str) -> BTreeMap<String, u64> {
    // The newest outcome per path across the ledgers: gather (finished, ledger, id).
    let mut latest: BTreeMap<String, (i64, usize, i64)> = BTreeMap::new();
    for (k, l) in ledgers.iter().enumerate() {
        let c = Connection::open(l).unwrap();
        let mut s = c
            .prepare(
                "SELECT coalesce(path, image), finished_ms, id FROM outcomes WHERE command = ?1",
            )
            .unwrap();
        let rows = s
            .query_map([command], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .unwrap();
        for row in rows {
            let (path, fin, id) = row.unwrap();
            let e = latest.entry(path).or_insert((fin, k, id));
            if (fin, id) >= (e.0, e.2) {
                *e = (fin, k, id);
            }
        }
    }
    let mut counts = BTreeMap::new();
    for (k, l) in ledgers.iter().enumerate() {
        let c = Connection::open(l).unwrap();
        let ids: Vec<String> = latest
            .values()
            .filter(|(_, lk, _)| *lk == k)
            .map(|(_, _, id)| id.to_string())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let sql = select.replace("{ids}", &ids.join(","));
        let mut s = c.prepare(&sql).unwrap();
        let rows = s
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .unwrap();
        for row in rows {
            let (key, n) = row.unwrap();
            *counts.entry(key).or_insert(0) += n as u64;
        }
    }
    counts
}

/// The report's JSON.
pub fn report_json(ledgers: &[&Path], command: &str) -> Value {
    let out = rehost_command()
        .arg("report")
        .args(ledgers)
        .args(["--command", command, "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the ledgers say, by SQL, as (what, count) in the page's own keys.
fn expected(ledgers: &[&Path], command: &str) -> BTreeMap<String, u64> {
    let mut e = BTreeMap::new();
    let images = sql_counts(
        ledgers,
        command,
        "SELECT 'images', count(*) FROM outcomes WHERE id IN ({ids})",
    );
    e.extend(images);
    for (k, n) in sql_counts(
        ledgers,
        command,
        "SELECT 'status.' || status, count(*) FROM outcomes WHERE id IN ({ids}) GROUP BY status",
    ) {
        e.insert(k, n);
    }
    for (k, n) in sql_counts(
        ledgers,
        command,
        "SELECT 'verdict.' || target || '.' || verdict, count(*) FROM verdicts \
         WHERE outcome IN ({ids}) GROUP BY target, verdict",
    ) {
        e.insert(k, n);
    }
    for (k, n) in sql_counts(
        ledgers,
        command,
        "SELECT 'rule.' || rule || '.findings', count(*) FROM findings \
         WHERE outcome IN ({ids}) GROUP BY rule",
    ) {
        e.insert(k, n);
    }
    for (k, n) in sql_counts(
        ledgers,
        command,
        "SELECT 'rule.' || rule || '.images', count(DISTINCT outcome) FROM findings \
         WHERE outcome IN ({ids}) GROUP BY rule",
    ) {
        e.insert(k, n);
    }
    for (k, n) in sql_counts(
        ledgers,
        command,
        "SELECT 'stop.' || stop, count(*) FROM verdicts \
         WHERE outcome IN ({ids}) AND stop IS NOT NULL GROUP BY stop",
    ) {
        e.insert(k, n);
    }
    if command == "fix" {
        e.extend(sql_counts(
            ledgers,
            command,
            "SELECT 'committed', count(*) FROM outcomes WHERE id IN ({ids}) AND committed",
        ));
        for (k, n) in sql_counts(
            ledgers,
            command,
            "SELECT 'transition.' || before || ' → ' || verdict, count(*) FROM verdicts \
             WHERE outcome IN ({ids}) AND before IS NOT NULL GROUP BY before, verdict",
        ) {
            e.insert(k, n);
        }
    }
    e
}

/// The same keys read from the report's JSON.
fn from_json(v: &Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let s = &v["summary"];
    m.insert(
        "images".into(),
        v["images"].as_array().unwrap().len() as u64,
    );
    for (k, n) in s["status"].as_object().unwrap() {
        m.insert(format!("status.{k}"), n.as_u64().unwrap());
    }
    for (t, per) in s["verdicts"].as_object().unwrap() {
        for (verdict, n) in per.as_object().unwrap() {
            m.insert(format!("verdict.{t}.{verdict}"), n.as_u64().unwrap());
        }
    }
    for (rule, c) in s["rules"].as_object().unwrap() {
        m.insert(
            format!("rule.{rule}.findings"),
            c["findings"].as_u64().unwrap(),
        );
        m.insert(format!("rule.{rule}.images"), c["images"].as_u64().unwrap());
    }
    for (k, n) in s["stops"].as_object().unwrap() {
        m.insert(format!("stop.{k}"), n.as_u64().unwrap());
    }
    if v["command"] == "fix" {
        m.insert("committed".into(), s["committed"].as_u64().unwrap());
        for (k, n) in s["transitions"].as_object().unwrap() {
            m.insert(format!("transition.{k}"), n.as_u64().unwrap());
        }
    }
    m
}

/// The same keys read from the page as Chromium rendered it (its DOM after the script).
fn from_dom(dom: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    };
    // Each counted cell: <td|b ... data-x="..." [data-y="..."]>N</...>
    for tag in dom.split('<').skip(1) {
        let Some((head, rest)) = tag.split_once('>') else {
            continue;
        };
        let attr = |name: &str| {
            head.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|t| t.split('"').next())
                .map(unescape)
        };
        let Ok(n) = rest.trim().parse::<u64>() else {
            continue;
        };
        let key = if let Some(c) = attr("data-count") {
            c
        } else if let (Some(t), Some(v)) = (attr("data-target"), attr("data-verdict")) {
            if n == 0 {
                continue; // the page shows zero cells; the ledger has no such rows
            }
            format!("verdict.{t}.{v}")
        } else if let (Some(r), Some(of)) = (attr("data-rule"), attr("data-of")) {
            if of != "findings" && of != "images" {
                continue;
            }
            format!("rule.{r}.{of}")
        } else if let Some(s) = attr("data-stop") {
            format!("stop.{s}")
        } else if let Some(t) = attr("data-transition") {
            format!("transition.{t}")
        } else {
            continue;
        };
        m.insert(key, n);
    }
    m
}

/// Checks `rehost report` of `command` over `ledgers` against the ledgers: the JSON, and
/// the HTML page in Chromium (skipped, and said, when Chromium is missing outside CI).
/// Returns the counts, keyed as the page keys them (`images`, `status.ok`,
/// `verdict.TARGET.VERDICT`, `rule.RULE.findings`, ...).
pub fn check_report(ledgers: &[&Path], command: &str, out_dir: &Path) -> BTreeMap<String, u64> {
    std::fs::create_dir_all(out_dir).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let want = expected(ledgers, command);
    let images = want["images"];
    let json = report_json(ledgers, command);
    assert_eq!(from_json(&json), want, "{command}: the JSON report");

    let page = out_dir.join(format!("{command}.html"));
    let _ = std::fs::remove_file(&page);
    let status = rehost_command()
        .arg("report")
        .args(ledgers)
        .args(["--command", command, "--html"])
        .arg(&page)
        .status()
        .unwrap();
    assert!(status.success());
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is fetched.
    for outside in ["http://", "https://", " src=", "<link", "@import"] {
        assert!(
            !html.contains(outside),
            "{command}: the page refers to {outside}"
        );
    }
    if !have_tool("chromium") {
        return want;
    }
    let chromium = |args: &[&str]| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!(
                "--user-data-dir={}",
                scratch.path().join("chromium").display()
            ))
            .args(args)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"])).unwrap();
    assert_eq!(from_dom(&dom), want, "{command}: the page in Chromium");
    // The page's script ran: it counted the rows it shows (the server wrote "?").
    assert!(
        dom.contains(&format!("data-shown=\"\">{images}<"))
            || dom.contains(&format!("data-shown>{images}<")),
        "{command}: the table's script did not run"
    );
    let shot = out_dir.join(format!("{command}.png"));
    let _ = std::fs::remove_file(&shot);
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,2600",
    ]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}",
        shot.display()
    );
    eprintln!(
        "report: screenshot of the {command} page: {}",
        shot.display()
    );
    want
}
