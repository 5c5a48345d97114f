//! A send that keeps a manifest on the target (`--manifest-key`): its cost follows what changed since
//! the last pass, not the size of the tree (docs/mover.md, "Delta passes").
//!
//! ```text
//!  1 fetch    pull .ferry-manifest from the target and remove it there (one rsync run)
//!  2 scan     stat the source in parallel                          (concurrently with 1)
//!  3 decide   delta when the manifest is present, of this format and volume, intact, and the change
//!             set is at most half the tree; else a full pass, saying why
//!  4 sync     delta: rsync --files-from=<changes> --delete-missing-args, one attempt (when it is
//!             interrupted, a full pass follows: only --delete removes rsync's leftovers); full: the
//!             usual pass
//!  5 upload   the scan as the new manifest (stages only: the final sync leaves none behind)
//!  6 root     the root's own attributes (steps 1, 4 and 5 move its mtime on the target)
//! ```
//!
//! The manifest is consumed in step 1, before anything else touches the target: a pass that fails
//! later leaves no manifest, so the next one runs full. A held final sender reads it while it waits
//! for its release ([`prefetch`], leaving it on the target) and decodes it then; step 1 still pulls
//! and removes it, but with that copy as the basis (`--checksum --link-dest`): when the target's copy
//! is the same, rsync links the basis and the decoding done while held is used; when it changed or
//! went, the pass reads what is there now, as without a prefetch. The new one describes the scan taken before
//! rsync read the tree; an entry that changes after the scan differs from it next time and is sent
//! again, so a live stage can only make the next pass send more, never less.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::delta::{self, ChangeSet};
use super::manifest::{self, Unusable};
use super::progress::{PassMode, Progress};
use super::rsync::{self, ManifestFetch, Selection, SendPlan};
use super::send::{self, Combined, ListDir, Reporter, SendConfig, Shared};
use super::tree_scan::{self, TreeScan};
use crate::{Error, Result};

/// Why a pass with a manifest key ran over the whole tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FullReason {
    /// The target holds no manifest (first pass, or the last one failed or was the final sync).
    NoManifest,
    /// The manifest is of another format or volume, or corrupt.
    Unusable(Unusable),
    /// `--checksum` asks for every file to be compared.
    Checksum,
    /// Some source directories could not be listed: their entries would look deleted.
    Unreadable(u64),
    /// More than half the tree changed: a full pass costs as much and can use parallel streams.
    LargeChange { changed: u64, deleted: u64 },
}

impl std::fmt::Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FullReason::NoManifest => f.write_str("no manifest"),
            FullReason::Unusable(why) => write!(f, "{why}"),
            FullReason::Checksum => f.write_str("checksum requested"),
            FullReason::Unreadable(count) => write!(f, "{count} source folder(s) could not be read"),
            FullReason::LargeChange { changed, deleted } => {
                write!(f, "large change: {changed} changed, {deleted} deleted")
            }
        }
    }
}

/// What step 3 decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Delta(ChangeSet),
    Full(FullReason),
}

/// The fetched manifest as step 3 takes it, decoded: `None` when the target held none.
pub(crate) type Fetched = Option<Decoded>;

/// Step 3, pure: `fetched` is the outcome of [`manifest::decode`] on the fetched file.
pub(crate) fn decide(fetched: &Fetched, checksum: bool, scan: &TreeScan) -> Decision {
    let old = match fetched {
        None => return Decision::Full(FullReason::NoManifest),
        Some(Err(why)) => return Decision::Full(FullReason::Unusable(why.clone())),
        Some(Ok(old)) => old,
    };
    if checksum {
        return Decision::Full(FullReason::Checksum);
    }
    if scan.unreadable > 0 {
        return Decision::Full(FullReason::Unreadable(scan.unreadable));
    }
    let changes = delta::changes(&old.entries, &scan.entries);
    if changes.too_large_for(scan.entries.len()) {
        let (changed, deleted) = (changes.changed, changes.deleted);
        return Decision::Full(FullReason::LargeChange { changed, deleted });
    }
    Decision::Delta(changes)
}

/// The target's manifest as a held sender read it while it waited, left on the target, and decoded.
pub(crate) struct Warm {
    /// The pass's folder, holding the copy.
    lists: ListDir,
    /// The copy: `<lists>/basis/.ferry-manifest`.
    basis: PathBuf,
    decoded: Decoded,
}

/// A manifest file, decoded.
type Decoded = std::result::Result<manifest::Manifest, Unusable>;

/// While held: reads the target's manifest without removing it and decodes it, so that the pass
/// after the release only checks that it is still the same. `None`, the pass then doing it all
/// itself, when the target holds none or the read fails (said in the log, never fatal).
pub(super) async fn prefetch(config: &SendConfig, base: &SendPlan) -> Option<(Warm, u64)> {
    let began = Instant::now();
    match peek(config, base).await {
        Ok(Some(warm)) => {
            let entries = warm.decoded.as_ref().map_or(0, |m| m.entries.len() as u64);
            tracing::info!(
                entries,
                secs = began.elapsed().as_secs_f64(),
                "manifest read while held"
            );
            Some((warm, entries))
        }
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(error = %err, "reading the manifest while held failed; the pass reads it after the release");
            None
        }
    }
}

async fn peek(config: &SendConfig, base: &SendPlan) -> Result<Option<Warm>> {
    let lists = ListDir::create("ferry-send")?;
    let basis_dir = lists.path().join("basis");
    std::fs::create_dir(&basis_dir).map_err(Error::io(format!("creating {}", basis_dir.display())))?;
    let args = rsync::manifest_fetch_args(
        &base.rsh,
        &basis_dir,
        ManifestFetch::Peek,
        config.compress,
        config.io_timeout_secs,
    );
    let shared = Shared::new(1);
    // One attempt, no `retry` records: the sender shows itself held all along.
    let once = SendConfig {
        retries: 0,
        ..config.clone()
    };
    let peeked =
        send::run_with_retries(&once, &args, Reporter::new(&shared, 0, Instant::now(), config)).await?;
    if peeked.code != 0 {
        return Err(Error::Mover(format!(
            "rsync exited with code {}: {}",
            peeked.code, peeked.message
        )));
    }
    let basis = basis_dir.join(manifest::FILE_NAME);
    let key = config.manifest_key.clone().unwrap_or_default();
    let read = basis.clone();
    let decoded = tokio::task::spawn_blocking(move || read_decoded(&read, &key))
        .await
        .map_err(|err| Error::Mover(format!("decoding the manifest: {err}")))??;
    Ok(decoded.map(|decoded| Warm {
        lists,
        basis,
        decoded,
    }))
}

/// The manifest at `path`, decoded under `key`; `None` when there is none.
fn read_decoded(path: &Path, key: &str) -> Result<Fetched> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(manifest::decode(&bytes, key))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(format!("reading {}", path.display()))(err)),
    }
}

/// The fetched manifest at `path`: the held sender's decoding when rsync linked it from the basis
/// (the target's copy had the basis's checksum), else the file read and decoded now. Also whether the
/// decoding done while held was used.
fn fetched_manifest(path: &Path, key: &str, warm: Option<(PathBuf, Decoded)>) -> Result<(Fetched, bool)> {
    if let Some((basis, decoded)) = warm {
        let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        if let (Ok(fetched), Ok(peeked)) =
            (std::fs::symlink_metadata(path), std::fs::symlink_metadata(&basis))
            && same(&fetched, &peeked)
        {
            return Ok((Some(decoded), true));
        }
        drop_aside(decoded);
    }
    Ok((read_decoded(path, key)?, false))
}

/// Runs steps 1 to 6; see the module header. `warm`: what a held sender read before its release.
pub(super) async fn run(
    config: &SendConfig,
    base: &SendPlan,
    started: Instant,
    warm: Option<Warm>,
) -> Result<Combined> {
    let key = config.manifest_key.clone().unwrap_or_default();
    let (lists, warm) = match warm {
        Some(Warm {
            lists,
            basis,
            decoded,
        }) => (lists, Some((basis, decoded))),
        None => (ListDir::create("ferry-send")?, None),
    };
    let shared = Shared::new(1);
    let reporter = || Reporter::new(&shared, 0, started, config);
    let basis_dir = warm.as_ref().and_then(|(basis, _)| basis.parent());
    let fetch_args = rsync::manifest_fetch_args(
        &base.rsh,
        lists.path(),
        ManifestFetch::Consume { basis: basis_dir },
        config.compress,
        config.io_timeout_secs,
    );
    let source = config.source.clone();
    let began = Instant::now();
    let scanning = tokio::task::spawn_blocking(move || {
        let excluded = [rsync::EXCLUDED_ROOT_ENTRY, manifest::FILE_NAME];
        let scan = tree_scan::scan(&source, &excluded, rsync::PARTIAL_DIR);
        (scan, began.elapsed())
    });
    let fetched = send::run_with_retries(config, &fetch_args, reporter()).await?;
    let fetch_took = began.elapsed();
    // 24 ("vanished") can only mean the manifest went away meanwhile: then there is none.
    if fetched.code != 0 && fetched.code != rsync::EXIT_VANISHED {
        tracing::warn!(code = fetched.code, "fetching the manifest failed");
        // The scan is of no use now; waited for so that it does not outlive the pass.
        let _scanned = scanning.await;
        return Ok(Combined::of(&[fetched], None));
    }
    // Decoded while the scan still runs: on a large tree the fetch ends well before the walk does.
    let manifest_path = lists.path().join(manifest::FILE_NAME);
    let decoding = {
        let key = key.clone();
        tokio::task::spawn_blocking(move || fetched_manifest(&manifest_path, &key, warm))
    };
    let (scan, scan_took) = scanning
        .await
        .map_err(|err| Error::Mover(format!("scanning the source: {err}")))?;
    let scan = scan?;
    let (old, prefetched) = decoding
        .await
        .map_err(|err| Error::Mover(format!("decoding the manifest: {err}")))??;
    let decision = decide(&old, config.checksum, &scan);
    // A million entries take tens of milliseconds to free: not on the way to the sync.
    drop_aside(old);
    let (entries, size) = scan.totals();
    let record = match &decision {
        Decision::Delta(changes) => Progress::Mode {
            mode: PassMode::Delta,
            reason: None,
            changed: changes.changed,
            deleted: changes.deleted,
            entries,
        },
        Decision::Full(reason) => Progress::Mode {
            mode: PassMode::Full,
            reason: Some(reason.to_string()),
            changed: 0,
            deleted: 0,
            entries,
        },
    };
    tracing::info!(
        mode = if matches!(decision, Decision::Delta(_)) {
            "delta"
        } else {
            "full"
        },
        reason = match &decision {
            Decision::Full(reason) => reason.to_string(),
            Decision::Delta(_) => String::new(),
        },
        entries,
        // The manifest as read while held (unchanged since): not decoded in this window.
        prefetched,
        // Where a pass's time goes (docs/benchmarks.md): the fetch and the scan run side by side.
        fetch_secs = fetch_took.as_secs_f64(),
        scan_secs = scan_took.as_secs_f64(),
        decide_secs = began.elapsed().as_secs_f64(),
        "pass decided"
    );
    super::emit(&record);
    let mut pass = match &decision {
        Decision::Delta(changes) => format!(
            "delta pass: {} changed, {} deleted",
            changes.changed, changes.deleted
        ),
        Decision::Full(reason) => format!("full pass: {reason}"),
    };
    let any_sparse = scan.entries.iter().any(|entry| entry.sparse);
    let mut runs = Vec::new();
    let delta = matches!(decision, Decision::Delta(_));
    let full_plan = SendPlan {
        sparse: any_sparse,
        ..base.clone()
    };
    let mut combined = match decision {
        Decision::Delta(changes) if !changes.list.is_empty() => {
            let list = lists.write("changes", &changes.files_from())?;
            let args = rsync::send_args(&SendPlan {
                selection: Selection::Changes(list),
                sparse: changes.sparse,
                ..base.clone()
            });
            // One attempt: an interrupted rsync may leave its temporary files on the target, and only
            // a full pass (--delete) removes them, so the retries go to a full pass.
            let once = SendConfig {
                retries: 0,
                ..config.clone()
            };
            let attempt = send::run_with_retries(&once, &args, reporter()).await?;
            if rsync::exit_is_retryable(attempt.code) && config.retries > 0 {
                let reason = format!("delta pass interrupted (rsync exit {})", attempt.code);
                pass = format!("full pass: {reason}");
                tracing::warn!(%reason, "continuing with a full pass");
                super::emit(&Progress::Mode {
                    mode: PassMode::Full,
                    reason: Some(reason),
                    changed: 0,
                    deleted: 0,
                    entries,
                });
                tokio::time::sleep(config.retry_delay).await;
                Some(send::run_whole(config, &full_plan, started).await?)
            } else {
                runs.push(attempt);
                None
            }
        }
        Decision::Delta(_) => None,
        Decision::Full(_) => Some(send::run_whole(config, &full_plan, started).await?),
    };
    let synced = match &combined {
        Some(full) => rsync::exit_is_success(full.code, config.final_sync),
        None => runs
            .iter()
            .all(|run| rsync::exit_is_success(run.code, config.final_sync)),
    };
    let mut uploaded = false;
    if synced && !config.final_sync {
        let pass_id: [u8; 16] = rand::random();
        let file = lists.write(
            manifest::FILE_NAME,
            &manifest::encode(&key, pass_id, &scan.entries),
        )?;
        // It names every path of the volume: readable by the movers only (rsync keeps the mode).
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(Error::io(format!("setting the mode of {}", file.display())))?;
        let args = rsync::manifest_upload_args(&base.rsh, &file, config.compress, config.io_timeout_secs);
        let upload = send::run_with_retries(config, &args, reporter()).await?;
        // The data is synced either way; without a manifest the next pass runs full.
        if upload.code == 0 {
            uploaded = true;
            tracing::info!(pass_id = hex::encode(pass_id), "manifest written");
        } else {
            tracing::warn!(code = upload.code, message = %upload.message, "writing the manifest failed");
        }
    }
    if synced && (delta || uploaded) {
        let args = rsync::send_args(&SendPlan {
            selection: Selection::RootOnly,
            ..base.clone()
        });
        runs.push(send::run_with_retries(config, &args, reporter()).await?);
    }
    drop_aside(scan);
    let mut outcome = match combined.take() {
        Some(full) if runs.is_empty() => full,
        Some(full) => full.then(&runs),
        None => Combined::of(&runs, Some((entries, size))),
    };
    outcome.pass = Some(pass);
    Ok(outcome)
}

/// Frees `value` on a thread of its own, so the pass does not wait for it (the process may exit first:
/// then the kernel takes the memory back at once).
fn drop_aside<T: Send + 'static>(value: T) {
    let spawned = std::thread::Builder::new()
        .name("ferry-free".into())
        .spawn(move || drop(value));
    // Without a thread it is freed here, as it would have been anyway.
    drop(spawned);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mover::manifest::Kind;
    use crate::mover::manifest::tests::entry;

    fn scan() -> TreeScan {
        TreeScan {
            entries: vec![entry(b"", Kind::Dir), entry(b"a", Kind::File)],
            unreadable: 0,
        }
    }

    #[test]
    fn every_doubt_about_the_manifest_is_a_full_pass_with_its_reason() {
        let written = manifest::encode("k", [1; 16], &scan().entries);
        let reason = |bytes: Option<&[u8]>, key: &str, checksum: bool, scan: &TreeScan| match decide(
            &bytes.map(|bytes| manifest::decode(bytes, key)),
            checksum,
            scan,
        ) {
            Decision::Full(reason) => reason.to_string(),
            Decision::Delta(_) => "delta".to_string(),
        };
        assert_eq!(reason(None, "k", false, &scan()), "no manifest");
        assert_eq!(
            reason(Some(&written), "other", false, &scan()),
            "manifest of another volume"
        );
        let mut flipped = written.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            reason(Some(&flipped), "k", false, &scan()),
            "corrupt manifest (checksum mismatch)"
        );
        assert_eq!(
            reason(Some(&written[..20]), "k", false, &scan()),
            "corrupt manifest (truncated header)"
        );
        assert_eq!(
            reason(Some(b"junk"), "k", false, &scan()),
            "corrupt manifest (too short)"
        );
        assert_eq!(reason(Some(&written), "k", true, &scan()), "checksum requested");
        let unreadable = TreeScan {
            unreadable: 2,
            ..scan()
        };
        assert_eq!(
            reason(Some(&written), "k", false, &unreadable),
            "2 source folder(s) could not be read"
        );
        assert_eq!(reason(Some(&written), "k", false, &scan()), "delta");
        let mut grown = scan();
        grown
            .entries
            .extend((0..3000).map(|i| entry(format!("n{i:05}").as_bytes(), Kind::File)));
        assert_eq!(
            reason(Some(&written), "k", false, &grown),
            "large change: 3000 changed, 0 deleted"
        );
    }
}
