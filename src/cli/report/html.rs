//! The report as one self-contained HTML page: every style, chart (inline SVG) and script
//! in the file, nothing fetched. Each number a reader (or a test) checks carries a `data-`
//! attribute naming what it counts; the per-image table filters and sorts in the browser.

use super::VERDICTS;
use rehost_ledger::report::{Report, Spread};
use std::fmt::Write;

/// Text made safe inside HTML elements and quoted attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The colour of a verdict.
fn colour(verdict: &str) -> &'static str {
    match verdict {
        "boots" => "#2e7d32",
        "boots-with-warnings" => "#f9a825",
        "no-boot" => "#c62828",
        _ => "#9e9e9e",
    }
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:90px}
.card b{display:block;font-size:22px}table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th.sort{cursor:pointer;user-select:none}th.sort:after{content:' \\2195';color:#aaa}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
#images td{font-size:13px}.ok{color:#2e7d32}.failed,.busy,.input{color:#c62828}
input,select{font:inherit;padding:3px 6px;margin-right:8px}
";

/// The script of the per-image table: a text filter, a status filter, sorting by column,
/// and the count of rows shown.
const SCRIPT: &str = "
(function(){
var t=document.getElementById('images'),rows=[].slice.call(t.tBodies[0].rows);
var q=document.getElementById('q'),st=document.getElementById('status'),
    shown=document.getElementById('shown');
function apply(){var s=q.value.toLowerCase(),w=st.value,n=0;
 rows.forEach(function(r){var ok=(!s||r.textContent.toLowerCase().indexOf(s)>=0)&&
  (!w||r.getAttribute('data-status')===w);r.style.display=ok?'':'none';if(ok)n++;});
 shown.textContent=n;}
q.addEventListener('input',apply);st.addEventListener('change',apply);
[].slice.call(t.tHead.rows[0].cells).forEach(function(th,c){th.className+=' sort';
 var dir=1;th.addEventListener('click',function(){dir=-dir;rows.sort(function(a,b){
  var x=a.cells[c].getAttribute('data-v')||a.cells[c].textContent,
      y=b.cells[c].getAttribute('data-v')||b.cells[c].textContent,
      nx=parseFloat(x),ny=parseFloat(y);
  if(!isNaN(nx)&&!isNaN(ny))return (nx-ny)*dir;return x<y?-dir:x>y?dir:0;});
  rows.forEach(function(r){t.tBodies[0].appendChild(r);});});});
apply();})();
";

/// Horizontal bars: a label, a bar as long as its share of the largest, the count.
fn bars(items: &[(String, usize)], what: &str, fill: &str) -> String {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let h = 22;
    let mut s = format!(
        "<svg width=\"760\" height=\"{}\" role=\"img\" aria-label=\"{}\">",
        items.len() * h + 4,
        esc(what)
    );
    for (k, (label, n)) in items.iter().enumerate() {
        let y = k * h;
        let w = (*n as f64 / max as f64 * 420.0).max(1.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"260\" y=\"{}\" width=\"{w:.1}\" height=\"16\" fill=\"{fill}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 15,
            esc(&shorten(label, 40)),
            y + 2,
            266.0 + w,
            y + 15
        );
    }
    s.push_str("</svg>");
    s
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut o: String = s.chars().take(n - 1).collect();
    o.push('…');
    o
}

/// A histogram of `values` in buckets that double (1, 2, 4, ... units).
fn histogram(values: &[f64], unit: &str, scale: f64, what: &str) -> String {
    if values.is_empty() {
        return "<p>none recorded</p>".into();
    }
    let bucket = |v: f64| -> i32 { (v / scale).max(1e-9).log2().floor().clamp(-20.0, 60.0) as i32 };
    let lo = values.iter().map(|v| bucket(*v)).min().unwrap_or(0);
    let hi = values.iter().map(|v| bucket(*v)).max().unwrap_or(0);
    let mut counts = vec![0usize; (hi - lo + 1) as usize];
    for v in values {
        counts[(bucket(*v) - lo) as usize] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1);
    let bw = 72;
    let mut s = format!(
        "<svg width=\"{}\" height=\"170\" role=\"img\" aria-label=\"{}\">",
        counts.len() * bw + 10,
        esc(what)
    );
    for (k, n) in counts.iter().enumerate() {
        let h = (*n as f64 / max as f64 * 110.0).max(if *n > 0 { 1.0 } else { 0.0 });
        let x = k * bw;
        let from = 2f64.powi(lo + k as i32);
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\" fill=\"#1565c0\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\">{n}</text>\
             <text x=\"{}\" y=\"150\" font-size=\"10\">≥{}{unit}</text>",
            x + 4,
            130.0 - h,
            bw - 8,
            x + 6,
            126.0 - h,
            x + 2,
            fmt_num(from)
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn spread_row(s: &Spread, key: &str, scale: f64, unit: &str) -> String {
    let cell = |name: &str, v: f64| {
        format!(
            "<td class=\"n\" data-spread=\"{key}.{name}\" data-v=\"{v}\">{:.2} {unit}</td>",
            v / scale
        )
    };
    format!(
        "<tr><th>{}</th><td class=\"n\" data-spread=\"{key}.count\">{}</td>{}{}{}{}</tr>",
        esc(key),
        s.count,
        cell("min", s.min),
        cell("median", s.median),
        cell("p90", s.p90),
        cell("max", s.max)
    )
}

/// The page.
pub fn page(r: &Report) -> String {
    let s = &r.summary;
    let mut h = String::with_capacity(64 * 1024 + r.images.len() * 400);
    let title = format!("rehost report: {}, {} images", r.command, r.images.len());
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>\
         <p class=\"sub\">from {}</p><div class=\"cards\">\
         <div class=\"card\">images<b data-count=\"images\">{}</b></div>",
        esc(&title),
        esc(&title),
        esc(&r.ledgers.join(", ")),
        r.images.len()
    );
    for (k, n) in &s.status {
        let _ = write!(
            h,
            "<div class=\"card\">{}<b data-count=\"status.{}\">{n}</b></div>",
            esc(k),
            esc(k)
        );
    }
    if r.command == "fix" {
        let _ = write!(
            h,
            "<div class=\"card\">written<b data-count=\"committed\">{}</b></div>",
            s.committed
        );
    }
    h.push_str("</div>");

    if !s.verdicts.is_empty() {
        h.push_str("<h2>Verdicts by target</h2><p class=\"legend\">");
        for v in VERDICTS {
            let _ = write!(
                h,
                "<span><i style=\"background:{}\"></i>{v}</span>",
                colour(v)
            );
        }
        h.push_str("</p><table><tr><th>target</th>");
        for v in VERDICTS {
            let _ = write!(h, "<th class=\"n\">{v}</th>");
        }
        h.push_str("<th></th></tr>");
        for (target, counts) in &s.verdicts {
            let total: usize = counts.values().sum::<usize>().max(1);
            let _ = write!(h, "<tr><td>{}</td>", esc(target));
            for v in VERDICTS {
                let _ = write!(
                    h,
                    "<td class=\"n\" data-target=\"{}\" data-verdict=\"{v}\">{}</td>",
                    esc(target),
                    counts.get(v).copied().unwrap_or(0)
                );
            }
            h.push_str("<td><svg width=\"300\" height=\"14\">");
            let mut x = 0.0;
            for v in VERDICTS {
                let w = counts.get(v).copied().unwrap_or(0) as f64 / total as f64 * 300.0;
                let _ = write!(
                    h,
                    "<rect x=\"{x:.1}\" width=\"{w:.1}\" height=\"14\" fill=\"{}\"/>",
                    colour(v)
                );
                x += w;
            }
            h.push_str("</svg></td></tr>");
        }
        h.push_str("</table>");
    }

    if !s.products.is_empty() {
        h.push_str("<h2>Windows versions (installs)</h2>");
        let items: Vec<(String, usize)> = s.products.iter().map(|(k, n)| (k.clone(), *n)).collect();
        h.push_str(&bars(&items, "installs by product", "#5e35b1"));
        h.push_str("<table>");
        for (p, n) in &s.products {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\" data-product=\"{}\">{n}</td></tr>",
                esc(p),
                esc(p)
            );
        }
        h.push_str("</table>");
    }

    if !s.rules.is_empty() {
        h.push_str("<h2>Findings by rule</h2>");
        let items: Vec<(String, usize)> =
            s.rules.iter().map(|(k, c)| (k.clone(), c.images)).collect();
        h.push_str(&bars(&items, "images with a finding, by rule", "#ef6c00"));
        h.push_str(
            "<table><tr><th>rule</th><th class=\"n\">images</th><th class=\"n\">findings</th>\
             <th class=\"n\">errors</th><th class=\"n\">fixable</th></tr>",
        );
        for (rule, c) in &s.rules {
            let r = esc(rule);
            let _ = write!(
                h,
                "<tr><td>{r}</td><td class=\"n\" data-rule=\"{r}\" data-of=\"images\">{}</td>\
                 <td class=\"n\" data-rule=\"{r}\" data-of=\"findings\">{}</td>\
                 <td class=\"n\" data-rule=\"{r}\" data-of=\"errors\">{}</td>\
                 <td class=\"n\" data-rule=\"{r}\" data-of=\"fixable\">{}</td></tr>",
                c.images, c.findings, c.errors, c.fixable
            );
        }
        h.push_str("</table>");
    }

    if !s.stops.is_empty() {
        h.push_str("<h2>Predicted STOP codes and failures (installs × targets)</h2>");
        let items: Vec<(String, usize)> = s.stops.iter().map(|(k, n)| (k.clone(), *n)).collect();
        h.push_str(&bars(&items, "predicted failures", "#c62828"));
        h.push_str("<table>");
        for (k, n) in &s.stops {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\" data-stop=\"{}\">{n}</td></tr>",
                esc(k),
                esc(k)
            );
        }
        h.push_str("</table>");
    }

    if !s.transitions.is_empty() {
        h.push_str("<h2>Fix outcomes: verdicts before → after</h2><table>");
        for (k, n) in &s.transitions {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\" data-transition=\"{}\">{n}</td></tr>",
                esc(k),
                esc(k)
            );
        }
        h.push_str("</table>");
    }

    h.push_str(
        "<h2>Time and bytes read per image</h2><table><tr><th></th><th class=\"n\">images</th>\
         <th class=\"n\">min</th><th class=\"n\">median</th><th class=\"n\">p90</th>\
         <th class=\"n\">max</th></tr>",
    );
    h.push_str(&spread_row(&s.elapsed_ms, "elapsed_ms", 1.0, "ms"));
    h.push_str(&spread_row(&s.bytes_read, "bytes_read", 1048576.0, "MiB"));
    h.push_str("</table>");
    let times: Vec<f64> = r.images.iter().filter_map(|i| i.elapsed_ms).collect();
    let bytes: Vec<f64> = r
        .images
        .iter()
        .filter_map(|i| i.bytes_read.map(|b| b as f64))
        .collect();
    h.push_str("<h3>time per image</h3>");
    h.push_str(&histogram(&times, " ms", 1.0, "time per image"));
    h.push_str("<h3>bytes read per image</h3>");
    h.push_str(&histogram(
        &bytes,
        " MiB",
        1048576.0,
        "bytes read per image",
    ));

    images_table(&mut h, r);
    let _ = write!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

/// The per-image table, with its filters.
fn images_table(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2>Images</h2><p><input id=\"q\" placeholder=\"filter: path, product, verdict, rule\" \
         size=\"40\"><select id=\"status\"><option value=\"\">any status</option>"
    );
    for k in r.summary.status.keys() {
        let _ = write!(h, "<option>{}</option>", esc(k));
    }
    let _ = write!(
        h,
        "</select><span id=\"shown\" data-shown>?</span> of {} shown</p>\
         <table id=\"images\"><thead><tr><th>image</th><th>status</th><th>product</th>\
         <th>verdicts</th><th>rules</th><th class=\"n\">changes</th>\
         <th class=\"n\">read (MiB)</th><th class=\"n\">time (ms)</th></tr></thead><tbody>",
        r.images.len()
    );
    for i in &r.images {
        let mut verdicts = String::new();
        for v in &i.verdicts {
            let _ = write!(
                verdicts,
                "<span style=\"color:{}\">{}: {}{}</span><br>",
                colour(&v.verdict),
                esc(&v.target),
                esc(&v.verdict),
                v.stop
                    .as_deref()
                    .map(|s| format!(" ({})", esc(s)))
                    .unwrap_or_default()
            );
        }
        let mut rules: Vec<&str> = i.findings.iter().map(|f| f.rule.as_str()).collect();
        rules.dedup();
        rules.sort_unstable();
        rules.dedup();
        let errors = if i.errors.is_empty() {
            String::new()
        } else {
            format!("<br><small>{}</small>", esc(&i.errors.join("; ")))
        };
        let _ = write!(
            h,
            "<tr data-status=\"{}\" data-image=\"{}\"><td>{}{errors}</td>\
             <td class=\"{}\">{}</td><td>{}</td><td>{verdicts}</td><td>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\" data-v=\"{}\">{}</td>\
             <td class=\"n\" data-v=\"{}\">{}</td></tr>",
            esc(&i.status),
            esc(&i.path),
            esc(&i.path),
            esc(&i.status),
            esc(&i.status),
            esc(&i.products.join(", ")),
            esc(&rules.join(", ")),
            i.changes,
            i.bytes_read.unwrap_or(0),
            i.bytes_read
                .map(|b| format!("{:.2}", b as f64 / 1048576.0))
                .unwrap_or_default(),
            i.elapsed_ms.unwrap_or(0.0),
            i.elapsed_ms.map(|t| format!("{t:.1}")).unwrap_or_default()
        );
    }
    h.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
