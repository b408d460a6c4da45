//! What a fleet operator's shell and manual get from the command line: completion scripts
//! that the shells parse and that offer every command, manual pages that groff renders
//! without a warning (one per command), the exit codes' table at the end of `--help` and
//! the same table in the README, and no colour under `NO_COLOR`.

mod common;

use common::{have_tool, rehost_command, root, run};
use std::process::Command;

/// The commands of `rehost --help`, from its "Commands:" list.
fn commands() -> Vec<String> {
    let help = String::from_utf8(run(rehost_command().arg("--help"))).unwrap();
    let list = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands: list");
    let names: Vec<String> = list
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 14, "{names:?}");
    names
}

#[test]
fn completions_parse_and_offer_every_command() {
    let names = commands();
    for (shell, checker) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let script = String::from_utf8(run(rehost_command().args(["completions", shell]))).unwrap();
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "the {shell} completion does not offer `{name}`"
            );
        }
        if !have_tool(checker) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("rehost.{shell}"));
        std::fs::write(&file, &script).unwrap();
        let out = Command::new(checker).arg("-n").arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{checker} -n refuses the completion: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A shell that does not exist is a usage error.
    let out = rehost_command()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_one_per_command_render_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let listed = String::from_utf8(run(rehost_command().arg("man").arg(dir.path()))).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(listed.lines().count(), files.len(), "{listed}");
    assert!(files.contains(&"rehost.1".to_string()));
    for name in commands() {
        assert!(
            files.contains(&format!("rehost-{name}.1")),
            "no page for {name}: {files:?}"
        );
    }
    for sub in ["query", "export", "import", "set", "delete"] {
        assert!(files.contains(&format!("rehost-reg-{sub}.1")), "{files:?}");
    }
    let top = std::fs::read_to_string(dir.path().join("rehost.1")).unwrap();
    assert!(top.contains(".SH \"EXIT STATUS\""), "{top}");
    if !have_tool("groff") {
        return;
    }
    for f in &files {
        // -ww: every warning; -z: no output, only the diagnostics.
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(dir.path().join(f))
            .output()
            .unwrap();
        assert!(out.status.success(), "groff fails on {f}");
        assert!(
            out.stderr.is_empty(),
            "groff warns on {f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The exit codes' table: the lines from "Exit codes:" to the end of `text`'s block.
fn table(text: &str) -> String {
    let from = text.find("Exit codes:").expect("an exit codes table");
    text[from..]
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn help_ends_with_the_exit_codes_the_readme_shows() {
    let help = String::from_utf8(run(rehost_command().arg("--help"))).unwrap();
    let ours = table(&help);
    for code in 0..=3 {
        assert!(
            ours.lines().any(|l| l.starts_with(&format!("  {code}  "))),
            "{ours}"
        );
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert_eq!(table(&readme), ours, "README's table differs from --help's");
}

#[test]
fn no_color_means_no_escape_sequences() {
    // `script` gives the command a terminal, where clap would style its help.
    if !have_tool("script") {
        return;
    }
    let help = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec"])
            .arg(format!("{} --help", env!("CARGO_BIN_EXE_rehost")))
            .arg("/dev/null")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        run(&mut cmd)
    };
    let styled = help(false);
    assert!(
        styled.contains(&0x1b),
        "on a terminal, the help is styled (else this test proves nothing)"
    );
    let plain = help(true);
    assert!(
        !plain.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&plain)
    );
}
