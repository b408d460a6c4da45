//! Splitting one fleet among the tasks of a scheduler: `--shard K/N` runs the rows whose
//! key hashes to `K` of `N`, so that N processes given the same input (an array job's
//! tasks, an Indexed Job's pods) together run every row once.
//!
//! **The key.** A row's shard is a function of its [`Item::key`] alone: the name its input
//! gave the image, relative to that input's own root (a manifest's `image` cell as
//! written, a found file's path below the directory searched, an argument or a line of
//! standard input as written). It is not the image's content or its identity in the
//! ledger, for two reasons:
//!
//! - a fix in place changes the image's bytes, its size and its time: a key taken from
//!   them would move a fixed image to another shard, whose `--resume` would not know it,
//!   and the image would appear in two ledgers;
//! - a row that cannot be run (a missing file, a duplicate, a row that cannot be read) has
//!   no content, and it must still land in exactly one shard to be reported once.
//!
//! It is not the canonical path either: the same shared storage mounted at `/mnt/fleet` on
//! one node and `/srv/fleet` on another gives different canonical paths but the same
//! manifest, so the same keys. (Give every task the same input: the same manifest, or the
//! same directory, or the same arguments; an array job does.) The key costs nothing to
//! read: sharding never opens an image.
//!
//! **The hash.** The first 8 bytes of the SHA-256 of the key (UTF-8), as a big-endian
//! number, modulo `N`: the same on every machine and every version of rehost, unlike the
//! standard library's hasher. Shards are balanced only statistically (200 rows in 4
//! shards: 50 each, give or take 7).
//!
//! **Defaults from the scheduler** ([`Shard::from_env`]): in a Slurm array task,
//! `K = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP` and
//! `N = SLURM_ARRAY_TASK_COUNT` (`--array=1-8` runs shards 0 to 7, `--array=0-30:10`
//! shards 0 to 3); an array whose task ids are not evenly spaced (`--array=1,5,6`) is
//! refused, as the tasks could not agree on their shards. In a Kubernetes Indexed Job,
//! `K = JOB_COMPLETION_INDEX`, and `N` is `REHOST_SHARD_COUNT`: Kubernetes does not put the
//! Job's completion count in the environment, so the Job's manifest must set that variable
//! to its `completions` (`deploy/kubernetes/fleet-job.yaml` does).

use crate::input::Item;
use sha2::{Digest, Sha256};

/// One shard of `count`: the rows whose key hashes to `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

/// Why a shard cannot be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardError {
    /// `K/N` does not read as two numbers with `K < N`.
    Syntax(String),
    /// A scheduler's variable is missing or not a number.
    Variable {
        /// The variable.
        name: &'static str,
        /// Its value, if it has one.
        value: Option<String>,
    },
    /// A Slurm array task whose id does not fall on the array's step.
    Uneven {
        /// `SLURM_ARRAY_TASK_ID`.
        id: u64,
        /// `SLURM_ARRAY_TASK_MIN`.
        min: u64,
        /// `SLURM_ARRAY_TASK_STEP`.
        step: u64,
        /// `SLURM_ARRAY_TASK_COUNT`.
        count: u64,
    },
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardError::Syntax(s) => write!(
                f,
                "--shard {s:?}: give K/N, two numbers with K from 0 to N-1 (0/4 to 3/4)"
            ),
            ShardError::Variable { name, value: None } => write!(
                f,
                "{name} is not set: {}",
                if *name == "REHOST_SHARD_COUNT" {
                    "in a Kubernetes Indexed Job, set it to the Job's completions \
                     (Kubernetes does not), or give --shard K/N"
                } else {
                    "give --shard K/N"
                }
            ),
            ShardError::Variable {
                name,
                value: Some(v),
            } => write!(f, "{name}={v:?} is not a number: give --shard K/N"),
            ShardError::Uneven {
                id,
                min,
                step,
                count,
            } => write!(
                f,
                "Slurm array task {id} is not one of {count} tasks from {min} in steps of \
                 {step}: the tasks of an array with uneven ids cannot agree on their shards; \
                 use --array=0-{} (or give each task --shard K/{count})",
                count.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for ShardError {}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    /// Reads `K/N`.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Syntax(s.to_string());
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count).ok_or_else(bad)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where a shard came from, for the line that says which shard a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Slurm array task's variables.
    Slurm,
    /// A Kubernetes Indexed Job's index and `REHOST_SHARD_COUNT`.
    Kubernetes,
}

impl Shard {
    /// Shard `index` of `count`, when `index < count`.
    pub fn new(index: u64, count: u64) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// The shard `key` falls in, of `count` (`count` 0 is taken as 1).
    pub fn of_key(key: &str, count: u64) -> u64 {
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % count.max(1)
    }

    /// Whether this shard runs `item`.
    pub fn takes(&self, item: &Item) -> bool {
        Shard::of_key(&item.key, self.count) == self.index
    }

    /// The rows of `items` this shard runs, in their order (each keeps its
    /// [`Item::index`] in the whole input).
    pub fn select(&self, items: Vec<Item>) -> Vec<Item> {
        items.into_iter().filter(|i| self.takes(i)).collect()
    }

    /// The shard a scheduler's environment gives (`var` reads a variable): a Slurm array
    /// task's, else a Kubernetes Indexed Job's, else none.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(Shard, Origin)>, ShardError> {
        let num = |name: &'static str| -> Result<Option<u64>, ShardError> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ShardError::Variable {
                        name,
                        value: Some(v),
                    }),
            }
        };
        let need = |name: &'static str| -> Result<u64, ShardError> {
            num(name)?.ok_or(ShardError::Variable { name, value: None })
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let count = need("SLURM_ARRAY_TASK_COUNT")?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let uneven = ShardError::Uneven {
                id,
                min,
                step,
                count,
            };
            let offset = id.checked_sub(min).ok_or(uneven.clone())?;
            if offset % step != 0 {
                return Err(uneven);
            }
            let shard = Shard::new(offset / step, count).ok_or(uneven)?;
            return Ok(Some((shard, Origin::Slurm)));
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = need("REHOST_SHARD_COUNT")?;
            let shard = Shard::new(index, count).ok_or_else(|| {
                ShardError::Syntax(format!(
                    "{index}/{count} (JOB_COMPLETION_INDEX/REHOST_SHARD_COUNT)"
                ))
            })?;
            return Ok(Some((shard, Origin::Kubernetes)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
