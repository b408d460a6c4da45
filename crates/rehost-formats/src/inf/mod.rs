//! Driver INF files: the text (UTF-16 with a byte order mark, UTF-8, or the ANSI code page
//! read as Latin-1) split into sections of lines, each line an optional key and a list of
//! comma-separated values, with `%strkey%` tokens replaced from `[Strings]`, quotes and
//! `;` comments and `\` continuations handled as Windows' setup API reads them. The driver
//! view (models chosen for an install, services, files) is `driver.rs`.

pub mod driver;

pub use driver::{Driver, Model, ServiceInstall, Target};

/// Largest INF text read (real ones are a few hundred KiB at most).
pub const MAX_INF: usize = 16 << 20;
/// Most lines kept (a bound on damaged input).
pub const MAX_LINES: usize = 200_000;

/// One line of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The key before `=`, if any (tokens replaced, unquoted).
    pub key: Option<String>,
    /// The values, comma-separated (tokens replaced, unquoted, trimmed).
    pub values: Vec<String>,
    /// Line number in the file, from 1.
    pub number: usize,
}

/// A section: its name as written and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets.
    pub name: String,
    /// Its lines, in order.
    pub lines: Vec<Line>,
}

/// A parsed INF file.
#[derive(Debug, Clone, Default)]
pub struct Inf {
    /// The sections in file order (a section named twice is merged into the first).
    pub sections: Vec<Section>,
}

/// Why an INF could not be read, or gave no driver for a target: the INF parser's own
/// error (it is given text, not an image), matched by its line;
/// [`rehost_core::Ctx::locate`] makes it a corrupt [`rehost_core::Error`] at that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfError {
    /// Line number, from 1 (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for InfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            f.write_str(&self.what)
        } else {
            write!(f, "line {}: {}", self.line, self.what)
        }
    }
}

impl std::error::Error for InfError {}

/// An INF that cannot be read, or says less than a driver needs, is a damaged file.
impl From<InfError> for rehost_core::ErrorKind {
    fn from(e: InfError) -> rehost_core::ErrorKind {
        rehost_core::ErrorKind::Corrupt(e.what)
    }
}

/// The line, or the file as a whole for line 0.
impl rehost_core::Located for InfError {
    fn location(&self) -> rehost_core::Location {
        match self.line {
            0 => rehost_core::Location::None,
            n => rehost_core::Location::Line(n),
        }
    }
}

/// The text of an INF file: UTF-16LE after FF FE, UTF-16BE after FE FF, UTF-8 (a BOM
/// skipped) when it decodes, else Latin-1.
pub fn decode(bytes: &[u8]) -> String {
    let units = |b: &[u8], be: bool| -> String {
        let u: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| {
                if be {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&u)
    };
    if let Some(b) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return units(b, false);
    }
    if let Some(b) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return units(b, true);
    }
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|c| *c as char).collect(),
    }
}

/// The fields of a line, split at unquoted commas; whitespace outside quotes at either
/// end of a field is dropped, quoted text is kept as written (`""` is one quote).
fn fields(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut space = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => {
                if !in_quotes && !cur.is_empty() {
                    cur.push_str(&space);
                }
                space.clear();
                in_quotes = !in_quotes;
                quoted = true;
            }
            ',' if !in_quotes => {
                out.push((std::mem::take(&mut cur), quoted));
                space.clear();
                quoted = false;
            }
            c if !in_quotes && c.is_whitespace() => space.push(c),
            other => {
                if !in_quotes && !cur.is_empty() {
                    cur.push_str(&space);
                }
                space.clear();
                cur.push(other);
            }
        }
    }
    out.push((cur, quoted));
    out
}

/// The text of a line without its comment (a `;` outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The position of the first `=` outside quotes.
fn equals(line: &str) -> Option<usize> {
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '=' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

impl Inf {
    /// Parses INF text. `%strkey%` tokens are replaced afterwards from `[Strings]` (and a
    /// localized `[Strings.0409]` where the plain one lacks a key).
    pub fn parse(text: &str) -> Result<Inf, InfError> {
        if text.len() > MAX_INF {
            return Err(InfError {
                line: 0,
                what: format!("{} bytes is more than an INF file holds", text.len()),
            });
        }
        let mut raw: Vec<Section> = Vec::new();
        let mut current: Option<usize> = None;
        let mut pending = String::new();
        let mut start = 0;
        let mut count = 0usize;
        for (i, l) in text.lines().enumerate() {
            let body = strip_comment(l).trim_end();
            if pending.is_empty() {
                start = i + 1;
            }
            if let Some(b) = body.strip_suffix('\\') {
                pending.push_str(b);
                continue;
            }
            pending.push_str(body);
            let line = std::mem::take(&mut pending);
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_LINES {
                return Err(InfError {
                    line: start,
                    what: format!("more than {MAX_LINES} lines"),
                });
            }
            if let Some(name) = t.strip_prefix('[') {
                let Some(name) = name.strip_suffix(']') else {
                    return Err(InfError {
                        line: start,
                        what: "a section name without its closing bracket".into(),
                    });
                };
                let name = name.trim().to_string();
                current = Some(
                    match raw.iter().position(|s| s.name.eq_ignore_ascii_case(&name)) {
                        Some(p) => p,
                        None => {
                            raw.push(Section {
                                name,
                                lines: Vec::new(),
                            });
                            raw.len() - 1
                        }
                    },
                );
                continue;
            }
            let Some(sec) = current else {
                // Text before the first section is ignored, as setup does.
                continue;
            };
            let (key, rest) = match equals(t) {
                Some(p) => (Some(t[..p].trim().to_string()), &t[p + 1..]),
                None => (None, t),
            };
            let values = fields(rest).into_iter().map(|(v, _)| v).collect();
            raw[sec].lines.push(Line {
                key: key.map(|k| fields(&k).remove(0).0),
                values,
                number: start,
            });
        }
        let mut inf = Inf { sections: raw };
        inf.substitute();
        Ok(inf)
    }

    /// The section named `name` (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The first value of the line keyed `key` in section `section`.
    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?
            .lines
            .iter()
            .find(|l| {
                l.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .and_then(|l| l.values.first())
            .map(String::as_str)
    }

    /// Replaces `%strkey%` tokens everywhere from the string sections; `%%` is a percent
    /// sign; an unknown token stays as written.
    fn substitute(&mut self) {
        let mut strings: Vec<(String, String)> = Vec::new();
        let localized = self
            .sections
            .iter()
            .filter(|s| s.name.to_ascii_lowercase().starts_with("strings."));
        let plain = self
            .sections
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case("strings"));
        for s in plain.chain(localized) {
            for l in &s.lines {
                if let (Some(k), Some(v)) = (&l.key, l.values.first()) {
                    if !strings.iter().any(|(sk, _)| sk.eq_ignore_ascii_case(k)) {
                        strings.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        let replace = |s: &str| -> String {
            let mut out = String::new();
            let mut rest = s;
            while let Some(p) = rest.find('%') {
                out.push_str(&rest[..p]);
                let after = &rest[p + 1..];
                match after.find('%') {
                    Some(0) => {
                        out.push('%');
                        rest = &after[1..];
                    }
                    Some(q) => {
                        let token = &after[..q];
                        match strings.iter().find(|(k, _)| k.eq_ignore_ascii_case(token)) {
                            Some((_, v)) => out.push_str(v),
                            None => {
                                out.push('%');
                                out.push_str(token);
                                out.push('%');
                            }
                        }
                        rest = &after[q + 1..];
                    }
                    None => {
                        out.push('%');
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            out
        };
        for s in &mut self.sections {
            if s.name.to_ascii_lowercase().starts_with("strings") {
                continue;
            }
            for l in &mut s.lines {
                if let Some(k) = &l.key {
                    l.key = Some(replace(k));
                }
                for v in &mut l.values {
                    *v = replace(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::{Ctx, ErrorKind, Layer, Location};

    #[test]
    fn an_unreadable_line_is_matched_and_located_by_its_number() {
        let e =
            Inf::parse("[Version]\r\nSignature=\"$Windows NT$\"\r\n[Manufacturer\r\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = Ctx::new("viostor.inf", Layer::Inf).locate(e);
        assert!(matches!(
            (&e.location, &e.kind),
            (Location::Line(3), ErrorKind::Corrupt(_))
        ));
        assert_eq!(
            e.to_string(),
            "viostor.inf: inf at line 3: a section name without its closing bracket"
        );
    }
}
