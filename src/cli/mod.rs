//! Argument parsing and dispatch. Each command lives in its own file and only calls the
//! library and renders what it returns.

mod cat;
mod check;
mod convert;
mod fix;
mod fleet;
mod image;
mod inspect;
mod ledger;
mod ls;
mod progress;
mod reg;
mod report;
mod scale;
mod shell;
mod targets;
mod undo;
mod volumes;
mod write;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Open Windows disk images offline: read them, tell whether they boot, fix what stops them.
#[derive(Parser)]
#[command(name = "rehost", version, about, long_about = None, after_help = shell::exit_codes())]
struct Cli {
    /// Print, on stderr, the bytes read from the image files (inspect, check, fix, volumes,
    /// ls, cat; the other commands refuse it).
    #[arg(long, global = true)]
    stats: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run (or its help is
// shown): building all of them cost a third of a small command's instructions.
#[command(defer = true)]
enum Command {
    /// List the volumes of a disk image: partition table, offsets, sizes, identities, contents.
    /// An E01 evidence file's stored MD5 and SHA-1 are shown; `--verify` hashes the media
    /// and holds it to them.
    /// Exit code 0, 1 when the image cannot be read or the listing carries errors (a
    /// partition past the end of the disk, an unreadable file system) or, with `--verify`,
    /// a stored hash does not match or a chunk cannot be read; 2 on a usage error.
    Volumes {
        /// A raw, VHD, VHDX, VMDK, qcow2 or E01 image (the format is read from the content;
        /// an E01's other segments are found beside it).
        image: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Read the whole media, compute its MD5 and SHA-1 and compare them with the hashes
        /// the image stores (an E01's, taken when it was acquired): "match" or "MISMATCH".
        #[arg(long)]
        verify: bool,
    },
    /// List a directory of a volume (names, record numbers, and sizes from each file's own
    /// record, not the stale copies in directory indexes).
    Ls {
        /// A raw, VHD or VHDX image.
        image: PathBuf,
        /// Directory inside the volume, `/` or `\` separated, any case (default: the root).
        #[arg(default_value = "")]
        path: String,
        /// Volume number as `rehost volumes` shows it (default: the only NTFS volume, or the
        /// one holding \Windows).
        #[arg(long)]
        volume: Option<u32>,
        /// List subdirectories too.
        #[arg(short, long)]
        recursive: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find every Windows install on each image and report what decides whether it boots:
    /// version, architecture, HAL and kernels, boot configuration, drive letters, storage
    /// drivers, hives, volume state. Read-only; images run in parallel. Exit code 0 when
    /// every image was read, 1 when one could not be or its report carries errors (printed
    /// as `error:` lines), 2 on a usage error.
    Inspect {
        /// Raw, VHD or VHDX images, directories (searched for images), `-` (paths on
        /// standard input, one a line).
        #[arg(required_unless_present = "manifest")]
        images: Vec<PathBuf>,
        /// Print one JSON document (an array for several images).
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Print one JSON line per image as each finishes.
        #[arg(long)]
        jsonl: bool,
        /// Images read at once (default: all cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        #[command(flatten)]
        fleet: scale::FleetArgs,
    },
    /// Read and edit the registry of a hive file or of an image's install: query, export,
    /// import .reg files, set and delete values and keys. Dirty hives are replayed from their
    /// transaction logs first; every edit is read back through nt-hive before it is written.
    Reg {
        #[command(subcommand)]
        command: reg::RegCommand,
    },
    /// Predict whether each Windows install on each image boots on each target machine,
    /// and if not, with which STOP code and why (the evidence, and whether `fix` can
    /// repair it). Read-only; images run in parallel. Exit code 0 when every install boots
    /// on every target, 3 when one does not (or cannot be told), 1 on read errors.
    Check {
        /// Raw, VHD or VHDX images, directories (searched for images), `-` (paths on
        /// standard input, one a line).
        #[arg(required_unless_present = "manifest")]
        images: Vec<PathBuf>,
        /// A target profile (`rehost targets` lists them; "all" for every one). Repeat it
        /// or separate names with commas. A manifest row's target replaces them.
        #[arg(long = "target", short = 't', required_unless_present = "manifest")]
        targets: Vec<String>,
        /// A directory of target profiles (*.toml) over the built-in ones.
        #[arg(long)]
        profiles: Option<PathBuf>,
        #[command(flatten)]
        fixing: FixArgs,
        /// Print one JSON document (an array for several images).
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Print one JSON line per image as each finishes.
        #[arg(long)]
        jsonl: bool,
        /// Images read at once (default: all cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        #[command(flatten)]
        fleet: scale::FleetArgs,
    },
    /// Repair what stops each install from booting on a target, through the rule that found
    /// it: storage drivers and their StartOverride, CriticalDeviceDatabase and
    /// DriverDatabase entries, power and hypervisor drivers, SanPolicy, ... The staged image
    /// is checked again and written only when it then boots there (--force writes anyway).
    /// Exit code 0 when every install boots after the fix, 3 when one does not, 1 on errors.
    Fix {
        /// Raw, VHD or VHDX images, directories (searched for images), `-` (paths on
        /// standard input, one a line).
        #[arg(required_unless_present = "manifest")]
        images: Vec<PathBuf>,
        /// The target profile (`rehost targets` lists them). A manifest row's target
        /// replaces it.
        #[arg(long = "target", short = 't', required_unless_present = "manifest")]
        target: Option<String>,
        /// A directory of target profiles (*.toml) over the built-in ones.
        #[arg(long)]
        profiles: Option<PathBuf>,
        #[command(flatten)]
        fixing: FixArgs,
        /// Write even when the staged image would still not boot on the target.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        mode: write::WriteMode,
        /// Print one JSON document (an array for several images).
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Print one JSON line per image as each finishes.
        #[arg(long)]
        jsonl: bool,
        /// Images fixed at once (default: all cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        #[command(flatten)]
        fleet: scale::FleetArgs,
    },
    /// Work on fleet ledgers (the SQLite databases --ledger writes): merge the ledgers of
    /// a fleet's shards into one.
    Ledger {
        #[command(subcommand)]
        command: ledger::LedgerCommand,
    },
    /// List the target profiles `check` knows, one line each.
    Targets {
        /// A directory of target profiles (*.toml) over the built-in ones.
        #[arg(long)]
        profiles: Option<PathBuf>,
    },
    /// Copy a file's bytes to standard output.
    Cat {
        /// A raw, VHD or VHDX image.
        image: PathBuf,
        /// File inside the volume, `/` or `\` separated, any case.
        path: String,
        /// Volume number as `rehost volumes` shows it.
        #[arg(long)]
        volume: Option<u32>,
        /// A named data stream (alternate data stream) instead of the file's main data.
        #[arg(long, default_value = "")]
        stream: String,
    },
    /// Restore an image written in place as it was before rehost wrote into it, from its
    /// undo journal (IMAGE.rehost-undo, removed afterwards). Undoes every commit the journal
    /// holds, and rolls back one that was interrupted. Refuses a journal that is damaged or
    /// belongs to another image, and writes nothing then.
    Undo {
        /// The image written in place.
        image: PathBuf,
    },
    /// Write a local file into an image's NTFS volume (created, or replaced in place).
    /// Refuses a volume Windows left hibernated or with a log to replay, and says why.
    Put {
        /// A raw, VHD or VHDX image.
        image: PathBuf,
        /// The file on this machine.
        local: PathBuf,
        /// Where it goes in the volume, `/` or `\` separated (missing directories are created).
        path: String,
        /// Volume number as `rehost volumes` shows it.
        #[arg(long)]
        volume: Option<u32>,
        #[command(flatten)]
        mode: write::WriteMode,
    },
    /// Delete a file from an image's NTFS volume.
    Rm {
        /// A raw, VHD or VHDX image.
        image: PathBuf,
        /// The file.
        path: String,
        /// Volume number as `rehost volumes` shows it.
        #[arg(long)]
        volume: Option<u32>,
        #[command(flatten)]
        mode: write::WriteMode,
    },
    /// Rename or move a file (or directory) within an image's NTFS volume.
    Mv {
        /// A raw, VHD or VHDX image.
        image: PathBuf,
        /// The file now.
        from: String,
        /// Its new path.
        to: String,
        /// Volume number as `rehost volumes` shows it.
        #[arg(long)]
        volume: Option<u32>,
        #[command(flatten)]
        mode: write::WriteMode,
    },
    /// Copy a virtual disk into a new image of another format (raw, VHD fixed, dynamic or
    /// for Azure, VHDX, qcow2, VMDK monolithicSparse or streamOptimized), from any format
    /// rehost reads (raw, VHD, VHDX, VMDK, qcow2, with their chains). Blocks that read as
    /// zeros stay holes; the new image is read back and compared before it gets its name,
    /// and an existing file is never written over.
    Convert {
        /// The image to copy.
        input: PathBuf,
        /// The new image (its extension names the format: .raw, .img, .vhd, .vhdx, .qcow2,
        /// .vmdk).
        output: PathBuf,
        /// The new image's format: raw, vhd (dynamic), vhd-fixed, vhd-azure (fixed, its size
        /// rounded up to whole MiB), vhdx (dynamic), qcow2, vmdk (monolithicSparse),
        /// vmdk-stream (streamOptimized, for upload to vSphere).
        #[arg(long, short = 'O')]
        output_format: Option<String>,
        /// For a VMDK output: the adapter its descriptor names (ddb.adapterType): ide,
        /// buslogic, lsilogic, legacyESX. Default: the input's, when it is a VMDK; else ide.
        #[arg(long)]
        vmdk_adapter: Option<String>,
    },
    /// Read fleet ledgers (`--ledger`) back: verdicts by target, the Windows versions,
    /// findings by rule, predicted STOP codes, fix outcomes, time and bytes read per image,
    /// and each image's latest outcome; as a table, CSV, JSON, or a self-contained HTML page.
    Report {
        /// Ledgers: several (a sharded run's) read as one, an image's newest outcome winning.
        #[arg(required = true)]
        ledgers: Vec<PathBuf>,
        /// The command reported on (default: that of the latest run in the ledgers).
        #[arg(long, value_parser = ["inspect", "check", "fix"])]
        command: Option<String>,
        /// Print it as a table, CSV (a row per install and target) or JSON.
        #[arg(long, value_enum, default_value = "table")]
        format: report::Format,
        /// Write a self-contained HTML page here instead (no network needed to view it).
        #[arg(long, conflicts_with = "format")]
        html: Option<PathBuf>,
    },
    /// Print a completion script for a shell on standard output (for bash:
    /// `rehost completions bash > /etc/bash_completion.d/rehost`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (`rehost.1`, `rehost-check.1`, ...) into a directory (for
    /// `man -M` or a `man1` folder on the MANPATH).
    Man {
        /// The directory, made if it does not exist.
        dir: PathBuf,
    },
}

/// A usage error found after parsing (a missing write mode, a rule name that does not
/// exist, ...): the command stops with exit code 2, as clap's own usage errors do.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The commands `--stats` applies to (those that only read, and `fix`).
fn takes_stats(c: &Command) -> bool {
    matches!(
        c,
        Command::Volumes { .. }
            | Command::Ls { .. }
            | Command::Inspect { .. }
            | Command::Check { .. }
            | Command::Fix { .. }
            | Command::Cat { .. }
            | Command::Convert { .. }
    )
}

// The options of the fixes: `fix` applies them, and `check` takes them to say what a fix
// given them would repair (its `[fixable]`).
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Fix options (check: what a fix with them would repair)")]
struct FixArgs {
    /// A folder of driver packages to inject from (a virtio-win tree).
    #[arg(long)]
    drivers: Option<PathBuf>,
    /// Replace hal.dll and the kernels in place (keeping *.rehost-orig) instead of a new
    /// boot.ini entry with /HAL= and /KERNEL=.
    #[arg(long)]
    replace_hal: bool,
    /// Also keep a STOP screen visible (CrashControl AutoReboot=0).
    #[arg(long)]
    show_stop_screen: bool,
    /// Only these rules' fixes (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Not these rules' fixes.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Edit a dirty hive whose transaction logs are missing or unusable as its primary
    /// file stands, and write it back consistent: whatever the logs held is lost.
    #[arg(long)]
    accept_dirty_hive: bool,
    /// Write a volume that holds an active hibernation image by emptying hiberfil.sys
    /// first: the hibernated session is lost, and Windows starts afresh.
    #[arg(long)]
    discard_hibernation: bool,
    /// Where a boot store exists but does not start the install (devices of another disk,
    /// the other firmware's loader, no entry for it, bootmgr missing), write the boot files
    /// new from the install's own \Windows\Boot, as bcdboot does, instead of editing the
    /// store: its other entries are lost. Missing boot files are rebuilt without it.
    #[arg(long)]
    rebuild_boot: bool,
    /// The firmware the machine starts by, for a target that offers both (`bios+uefi`
    /// in `rehost targets`): `uefi` checks and fixes as for a UEFI-only machine (an MBR
    /// disk is converted to GPT with an EFI system partition), `bios` as for a BIOS one.
    #[arg(long, value_parser = ["bios", "uefi"])]
    firmware: Option<String>,
}

impl FixArgs {
    /// The targets as `--firmware` narrows them: each that offers that firmware starts by
    /// it alone. `strict`: a target that does not offer it is an error (the targets named
    /// on the command line), else it is left as it is (every profile, for manifests).
    fn narrow(
        &self,
        targets: Vec<rehost::rules::Target>,
        strict: bool,
    ) -> anyhow::Result<Vec<rehost::rules::Target>> {
        let Some(fw) = &self.firmware else {
            return Ok(targets);
        };
        let mut out = Vec::with_capacity(targets.len());
        for mut t in targets {
            if t.firmware.iter().any(|f| f == fw) {
                t.firmware = vec![fw.clone()];
            } else if strict {
                anyhow::bail!(
                    "target {} starts by {} only, not by {fw} (--firmware)",
                    t.name,
                    t.firmware.join(" and ")
                );
            }
            out.push(t);
        }
        Ok(out)
    }

    fn options(&self) -> rehost::rules::fix::FixOptions {
        rehost::rules::fix::FixOptions {
            drivers: self.drivers.clone(),
            replace_hal: self.replace_hal,
            show_stop_screen: self.show_stop_screen,
            only: self.only.clone(),
            skip: self.skip.clone(),
            accept_dirty_hive: self.accept_dirty_hive,
            discard_hibernation: self.discard_hibernation,
            rebuild_boot: self.rebuild_boot,
            allow_shadow_copies: false,
            output_format: None,
            vmdk_adapter: None,
        }
    }
}

fn check_rule_names(only: &[String], skip: &[String]) -> Result<(), Usage> {
    let fixable: Vec<&str> = rehost::rules::RULES
        .iter()
        .filter(|r| r.fix.is_some())
        .map(|r| r.id)
        .fold(Vec::new(), |mut v, id| {
            if !v.contains(&id) {
                v.push(id);
            }
            v
        });
    match only
        .iter()
        .chain(skip)
        .find(|n| !fixable.contains(&n.as_str()))
    {
        None => Ok(()),
        Some(bad) => Err(Usage(format!(
            "no rule with a fix is named {bad:?}; the rules with a fix are: {}",
            fixable.join(", ")
        ))),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut matches = command.get_matches_mut();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut command).exit(),
    };
    // The tree of every subcommand's arguments is not used again and the process ends
    // soon: taking it apart cost a third as much as building it, on every command.
    std::mem::forget(command);
    if cli.stats && !takes_stats(&cli.command) {
        eprintln!(
            "rehost: --stats applies to inspect, check, fix, volumes, ls and cat, which read \
             the image; this command does not take it"
        );
        return 2;
    }
    let result = match &cli.command {
        Command::Volumes {
            image,
            json,
            verify,
        } => volumes::run(image, *json, *verify, cli.stats),
        Command::Ls {
            image,
            path,
            volume,
            recursive,
            json,
        } => ls::run(image, path, *volume, *recursive, *json, cli.stats),
        Command::Inspect {
            images,
            json,
            jsonl,
            jobs,
            fleet: f,
        } => {
            let output = fleet::Output::from_flags(*json, *jsonl);
            f.items(images)
                .and_then(|items| inspect::run(&items, f, output, *jobs, cli.stats))
        }
        Command::Fix {
            images,
            target,
            profiles,
            fixing,
            force,
            mode,
            json,
            jsonl,
            jobs,
            fleet: f,
        } => {
            if let Err(e) = check_rule_names(&fixing.only, &fixing.skip) {
                eprintln!("rehost: {e}");
                return 2;
            }
            let all = match rehost::rules::target::load(profiles.as_deref())
                .map_err(anyhow::Error::from)
                .and_then(|all| fixing.narrow(all, false))
            {
                Ok(all) => all,
                Err(e) => {
                    eprintln!("rehost: {e:#}");
                    return 2;
                }
            };
            let t = match target {
                Some(name) => match check::targets(std::slice::from_ref(name), profiles.as_deref())
                    .and_then(|t| fixing.narrow(t, true))
                {
                    Ok(t) if t.len() == 1 => t.into_iter().next(),
                    Ok(_) => {
                        eprintln!("rehost: fix takes one target");
                        return 2;
                    }
                    Err(e) => {
                        eprintln!("rehost: {e:#}");
                        return 2;
                    }
                },
                None => None,
            };
            f.items(images).and_then(|items| {
                if mode.output.is_some() && items.len() > 1 {
                    return Err(Usage(
                        "--output writes one new image: give one image, or use --in-place or \
                         --dry-run (or an output on each manifest row)"
                            .into(),
                    )
                    .into());
                }
                // A shard may hold none of the rows.
                let first = items
                    .first()
                    .map(|i| i.image().to_path_buf())
                    .unwrap_or_default();
                let m = match mode.mode(&first) {
                    Ok(m) => Some(m),
                    // Each manifest row may give its own output.
                    Err(_)
                        if f.manifest.is_some()
                            && !mode.dry_run
                            && !mode.in_place
                            && mode.output.is_none() =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                };
                fix::run(fix::Args {
                    items: &items,
                    fleet: f,
                    work: rehost_fleet::work::Fix {
                        target: t,
                        all,
                        mode: m,
                        options: rehost::rules::fix::FixOptions {
                            allow_shadow_copies: mode.allow_shadow_copies,
                            output_format: mode.output_format()?,
                            vmdk_adapter: mode.vmdk_adapter()?,
                            ..fixing.options()
                        },
                        force: *force,
                    },
                    output: fleet::Output::from_flags(*json, *jsonl),
                    jobs: *jobs,
                    stats: cli.stats,
                })
            })
        }
        Command::Check {
            images,
            targets,
            profiles,
            fixing,
            json,
            jsonl,
            jobs,
            fleet: f,
        } => {
            let output = fleet::Output::from_flags(*json, *jsonl);
            if let Err(e) = check_rule_names(&fixing.only, &fixing.skip) {
                eprintln!("rehost: {e}");
                return 2;
            }
            let all = rehost::rules::target::load(profiles.as_deref())
                .map_err(anyhow::Error::from)
                .and_then(|all| fixing.narrow(all, false));
            let named =
                check::targets(targets, profiles.as_deref()).and_then(|t| fixing.narrow(t, true));
            match named.and_then(|t| Ok((t, all?))) {
                Ok((targets, all)) => f.items(images).and_then(|items| {
                    let work = rehost_fleet::work::Check {
                        targets,
                        all,
                        options: fixing.options(),
                    };
                    check::run(&items, f, &work, output, *jobs, cli.stats)
                }),
                Err(e) => {
                    eprintln!("rehost: {e:#}");
                    return 2;
                }
            }
        }
        Command::Targets { profiles } => rehost::rules::target::load(profiles.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|t| targets::run(&t)),
        Command::Cat {
            image,
            path,
            volume,
            stream,
        } => cat::run(image, path, *volume, stream, cli.stats),
        Command::Reg { command } => reg::run(command),
        Command::Ledger { command } => ledger::run(command),
        Command::Undo { image } => undo::run(image),
        Command::Put {
            image,
            local,
            path,
            volume,
            mode,
        } => {
            let op = write::FileOp::Put {
                local: local.clone(),
                path: path.clone(),
            };
            write::run(image, *volume, &op, mode)
        }
        Command::Rm {
            image,
            path,
            volume,
            mode,
        } => write::run(
            image,
            *volume,
            &write::FileOp::Rm { path: path.clone() },
            mode,
        ),
        Command::Mv {
            image,
            from,
            to,
            volume,
            mode,
        } => {
            let op = write::FileOp::Mv {
                from: from.clone(),
                to: to.clone(),
            };
            write::run(image, *volume, &op, mode)
        }
        Command::Convert {
            input,
            output,
            output_format,
            vmdk_adapter,
        } => convert::run(
            input,
            output,
            output_format.as_deref(),
            vmdk_adapter.as_deref(),
            cli.stats,
        ),
        Command::Report {
            ledgers,
            command,
            format,
            html,
        } => report::run(ledgers, command.as_deref(), *format, html.as_deref()),
        Command::Completions { shell } => shell::completions(*shell),
        Command::Man { dir } => shell::man(dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rehost: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                2
            } else {
                1
            }
        }
    }
}
