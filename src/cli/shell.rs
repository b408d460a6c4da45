//! What a shell and a manual need of the command line, generated from its own definition so
//! that they never drift from it: completion scripts (`rehost completions SHELL`), manual
//! pages (`rehost man DIR`), and the table of exit codes every `--help` ends with.

use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The exit codes of every command: each code and what it means.
const EXIT_CODES: [(u8, &str); 4] = [
    (
        0,
        "success: every image was read (and written); for check and fix, every install \
         boots on every target asked",
    ),
    (
        1,
        "an image could not be read or written, or its report carries errors (`error:` \
         lines); in a fleet, at least one image did",
    ),
    (
        2,
        "a usage error: an unknown option, target or rule, a missing write mode; nothing \
         was read or written",
    ),
    (
        3,
        "check and fix: an install does not boot on a target, or it cannot be told",
    ),
];

/// The table of exit codes that `rehost --help` ends with (and the README shows).
pub fn exit_codes() -> String {
    let mut text = String::from("Exit codes:");
    for (code, what) in EXIT_CODES {
        text.push_str(&format!("\n  {code}  "));
        text.push_str(&wrap(what, 84, "\n     "));
    }
    text
}

/// `text` broken at spaces into lines of at most `width` characters, joined by `join`.
fn wrap(text: &str, width: usize, join: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join(join)
}

/// The whole command line with every command's arguments built, for what walks all of it.
/// Each command's arguments are built only when it runs (see `Command`), and the `help`
/// command's tree is copied from the others before they are: so they are built first, on a
/// copy, and put in place of the unbuilt ones.
fn full_command() -> clap::Command {
    let mut built = super::Cli::command();
    built.build();
    let mut cmd = super::Cli::command();
    for sub in built.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name().to_string();
        let sub = sub.clone();
        cmd = cmd.mut_subcommand(name, |_| sub);
    }
    cmd
}

/// Prints the completion script for `shell` on standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut cmd = full_command();
    clap_complete::generate(shell, &mut cmd, "rehost", &mut std::io::stdout());
    Ok(0)
}

/// Writes the manual pages into `dir`: `rehost.1`, and `rehost-COMMAND.1` for each command
/// (`rehost-reg-set.1` for those of `reg`), then prints their names.
pub fn man(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = full_command();
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, "rehost", &mut written)?;
    let mut out = std::io::stdout().lock();
    for path in written {
        writeln!(out, "{}", path.display())?;
    }
    Ok(0)
}

/// Writes the page of `cmd`, named `name`, and those of its subcommands under `name-SUB`.
fn write_pages(
    cmd: &clap::Command,
    dir: &Path,
    name: &str,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let cmd = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    render(&cmd, &mut page).with_context(|| format!("rendering the manual page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, dir, &format!("{name}-{}", sub.get_name()), written)?;
    }
    Ok(())
}

/// One manual page: clap_mangen's sections, with the exit codes as the EXIT STATUS section
/// of the top page (in place of the `--help` text's own table).
fn render(cmd: &clap::Command, w: &mut Vec<u8>) -> std::io::Result<()> {
    let top = cmd.get_name() == "rehost";
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if top {
        let mut roff = clap_mangen::roff::Roff::new();
        roff.control("SH", ["EXIT STATUS"]);
        for (code, what) in EXIT_CODES {
            roff.control("TP", []);
            roff.text([clap_mangen::roff::roman(code.to_string())]);
            roff.text([clap_mangen::roff::roman(what)]);
        }
        roff.to_writer(w)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}
