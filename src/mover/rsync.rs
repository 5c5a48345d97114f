//! Everything Ferry tells rsync, as pure functions: the sender's argument list and the receiver's
//! generated daemon configuration. Kept apart from process handling so each option is unit-tested and
//! documented in one place (docs/mover.md mirrors this file).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The only module the receiver's rsync daemon serves.
pub(crate) const MODULE: &str = "ferry";
/// Where interrupted files wait to be resumed, relative to the volume root. rsync excludes it from the
/// transfer and protects it from `--delete` on its own.
pub(crate) const PARTIAL_DIR: &str = ".ferry-partial";
/// The root-level entry every sync leaves alone (fsck's folder; `--exclude=/lost+found` below).
pub(crate) const EXCLUDED_ROOT_ENTRY: &str = "lost+found";
/// rsync's exit code for "some files vanished before they could be transferred".
pub(crate) const EXIT_VANISHED: i32 = 24;
/// Starts each line a verify asks rsync to print per differing item (`--out-format`, then the item code
/// and the path), so it can never be taken for a progress or stats line.
pub(crate) const ITEM_PREFIX: &str = "ferry-item: ";

/// What one rsync run of the sender should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendPlan {
    /// The volume root on the sender; its contents (not the folder itself) are mirrored.
    pub source: PathBuf,
    /// The remote-shell command rsync starts to reach the receiver (`ferry mover tunnel`).
    pub rsh: String,
    /// Compare whole-file checksums instead of size and mtime (a sync that trusts no mtime).
    pub checksum: bool,
    /// Compare only (`--verify`): a dry run with checksums that itemizes what differs and changes nothing.
    pub verify: bool,
    /// Do not set directory mtimes (a non-root receiver cannot on directories it does not own).
    pub omit_dir_times: bool,
    /// Which part of the tree this run mirrors.
    pub selection: Selection,
    /// Bandwidth limit in KiB/s.
    pub bwlimit_kib: Option<u64>,
    /// Seconds of I/O silence after which rsync gives up (exit 30, retried).
    pub io_timeout_secs: u64,
    /// `--sparse`: only when the scan found a file with holes (or did not scan), since the receiver's
    /// search for zeros costs CPU on every dense file.
    pub sparse: bool,
    /// `--compress --compress-choice=zstd`, for slow links.
    pub compress: bool,
    /// Protect the target's manifest (`--exclude=/.ferry-manifest`): passes with a manifest key, and
    /// Verify. A plain pass (no key) mirrors the volume exactly and so removes a manifest an earlier
    /// stage left, which no longer describes the target once the plain pass has changed it.
    pub keep_manifest: bool,
}

/// Which part of the source tree one rsync run mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Everything below the root.
    Whole,
    /// The paths of a NUL-separated list (the user's `--files-from`), recursively.
    Listed(PathBuf),
    /// One stream of a parallel sync (see [`super::shard`]): the listed units, recursively, with
    /// deletions inside them. A unit gone since the scan is skipped, not an error: the pass after the
    /// streams mirrors its deletion.
    Units(PathBuf),
    /// The non-recursive pass of a parallel sync: the entries of each listed split directory (`./`,
    /// `dir/.`), with deletions at that level, but no file data (`--max-size=0`: the streams send it).
    SplitDirs(PathBuf),
    /// A delta pass (see [`super::delta`]): exactly the listed paths, directories without their
    /// contents, each listed file compared whatever its size and mtime (`--ignore-times`: the list holds
    /// edits that kept both), and listed paths missing on the source deleted on the target.
    Changes(PathBuf),
    /// The root directory's own attributes, nothing below it (after a delta pass and the manifest's
    /// removal or upload, which move the root's mtime on the target).
    RootOnly,
}

/// The options every sync uses (the benchmark gives its baselines the same ones): archive semantics
/// spelled out, hard links, numeric ids, sparse files, and a mirror (what is gone on the source goes on
/// the target; excluded paths are protected), with machine-readable progress and stats.
pub const ARCHIVE_OPTIONS: &[&str] = &[
    "--recursive",
    "--links",
    "--perms",
    "--times",
    "--group",
    "--owner",
    "--devices",
    "--specials",
    "--hard-links",
    "--numeric-ids",
    "--sparse",
    // Compare times to the nanosecond (rsync >= 3.1.3 on both sides). rsync's default whole-second
    // comparison skips a file rewritten within the same second at the same size (stale data on the
    // target), and leaves a directory's mtime wrong when it changed within the same second as the
    // previous sync (found by the e2e scenarios).
    "--modify-window=-1",
    "--delete",
    "--delete-during",
    "--exclude=/lost+found",
    // The manifest of the last pass (see super::manifest) is Ferry's, not the volume's.
    "--exclude=/.ferry-manifest",
    "--info=progress2,stats2",
];

/// The sender's rsync arguments (without the program name).
pub(crate) fn send_args(plan: &SendPlan) -> Vec<OsString> {
    let SendPlan {
        source,
        rsh,
        checksum,
        verify,
        omit_dir_times,
        selection,
        bwlimit_kib,
        io_timeout_secs,
        sparse,
        compress,
        keep_manifest,
    } = plan;
    let mut args: Vec<OsString> = ARCHIVE_OPTIONS
        .iter()
        .filter_map(|option| match (*option, selection) {
            ("--recursive", Selection::SplitDirs(_) | Selection::RootOnly) => Some("--dirs"),
            // --files-from implies --dirs: listed directories are created without their contents.
            ("--recursive", Selection::Changes(_)) => None,
            ("--delete" | "--delete-during", Selection::Changes(_) | Selection::RootOnly) => None,
            ("--sparse", _) if !sparse => None,
            ("--exclude=/.ferry-manifest", _) if !keep_manifest => None,
            (option, _) => Some(option),
        })
        .map(OsString::from)
        .collect();
    args.push(format!("--partial-dir={PARTIAL_DIR}").into());
    args.push(format!("--timeout={io_timeout_secs}").into());
    if *checksum || *verify {
        args.push("--checksum".into());
    }
    if *verify {
        // The sync's own options decide what counts as a difference (content, mode, owner, times, links,
        // extra files through --delete); --dry-run makes the receiver write nothing, and each differing
        // item comes back as one line (rsync escapes non-printable bytes in %n as \#ooo).
        args.push("--dry-run".into());
        args.push("--itemize-changes".into());
        args.push(format!("--out-format={ITEM_PREFIX}%i %n").into());
    }
    if *omit_dir_times {
        args.push("--omit-dir-times".into());
    }
    if let Some(limit) = bwlimit_kib {
        args.push(format!("--bwlimit={limit}").into());
    }
    if *compress {
        args.extend(COMPRESS_OPTIONS.iter().map(OsString::from));
    }
    let list = match selection {
        Selection::Whole | Selection::RootOnly => None,
        Selection::Listed(list)
        | Selection::Units(list)
        | Selection::SplitDirs(list)
        | Selection::Changes(list) => Some(list),
    };
    if let Some(list) = list {
        let mut arg = OsString::from("--files-from=");
        arg.push(list);
        args.push(arg);
        args.push("--from0".into());
    }
    if matches!(selection, Selection::Units(_) | Selection::SplitDirs(_)) {
        args.push("--ignore-missing-args".into());
    }
    if matches!(selection, Selection::SplitDirs(_)) {
        // The streams carry every file's data; these passes only shape the folders (and delete).
        args.push("--max-size=0".into());
    }
    if matches!(selection, Selection::Changes(_)) {
        // A missing source path deletes the target's (a non-empty directory too: --force).
        args.extend(["--delete-missing-args", "--force", "--ignore-times"].map(OsString::from));
    }
    if matches!(selection, Selection::RootOnly) {
        args.push("--exclude=/*".into());
    }
    args.push("--rsh".into());
    args.push(rsh.into());
    // A trailing slash: the contents of the root, not a folder named after it.
    let mut source_arg = source.as_os_str().to_owned();
    if !source_arg.to_string_lossy().ends_with('/') {
        source_arg.push("/");
    }
    args.push(source_arg);
    args.push(module_root().into());
    args
}

/// zstd through rsync (`transfer.compress`); rsync >= 3.2 on both sides.
pub(crate) const COMPRESS_OPTIONS: &[&str] = &["--compress", "--compress-choice=zstd"];

/// "host::module" over a remote shell: rsync asks the far end (our tunnel) for a daemon. The host name
/// is only passed to the tunnel, which ignores it.
fn module_root() -> String {
    format!("ferry-receiver::{MODULE}/")
}

/// How a manifest fetch treats the target's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestFetch<'a> {
    /// Read it and leave it there: a held sender warming up changes nothing on the target.
    Peek,
    /// Pull it into the pass's folder and remove it there in the same run (`--remove-source-files`):
    /// whatever the pass does next, no manifest stays behind to vouch for a target the pass may leave
    /// half-changed. With `basis` (the folder of a copy peeked earlier), a target copy with the same
    /// checksum is hard-linked from it instead of sent (`--checksum --link-dest`), so whether it
    /// changed since the peek shows as whether the pulled file is the basis's inode.
    Consume { basis: Option<&'a Path> },
}

/// Pulls the manifest from the target into `into_dir` (see [`ManifestFetch`]). A missing manifest
/// is not an error (`--ignore-missing-args`): then `into_dir` gets none.
pub(crate) fn manifest_fetch_args(
    rsh: &str,
    into_dir: &Path,
    how: ManifestFetch<'_>,
    compress: bool,
    timeout: u64,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--ignore-missing-args".into()];
    if let ManifestFetch::Consume { basis } = how {
        args.insert(0, "--remove-source-files".into());
        if let Some(basis) = basis {
            args.push("--checksum".into());
            let mut link = OsString::from("--link-dest=");
            link.push(basis);
            args.push(link);
        }
    }
    args.push(format!("--timeout={timeout}").into());
    if compress {
        args.extend(COMPRESS_OPTIONS.iter().map(OsString::from));
    }
    args.extend(["--rsh".into(), rsh.into()]);
    args.push(format!("{}{}", module_root(), super::manifest::FILE_NAME).into());
    let mut dir = into_dir.as_os_str().to_owned();
    dir.push("/");
    args.push(dir);
    args
}

/// Writes `file` (named [`super::manifest::FILE_NAME`]) at the target's root. `--inplace`: no temp
/// name is left behind by an interrupted upload; a half-written manifest fails its checksum.
pub(crate) fn manifest_upload_args(rsh: &str, file: &Path, compress: bool, timeout: u64) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--inplace".into(), format!("--timeout={timeout}").into()];
    if compress {
        args.extend(COMPRESS_OPTIONS.iter().map(OsString::from));
    }
    args.extend([
        "--rsh".into(),
        rsh.into(),
        file.as_os_str().to_owned(),
        module_root().into(),
    ]);
    args
}

/// Quotes one word for rsync's `--rsh` splitting (which honours single and double quotes).
pub(crate) fn rsh_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\"'\"'"))
    }
}

/// How the receiver runs: decides chroot and which ids rsync's daemon keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DaemonPlan {
    /// The volume root: the module's path, absolute.
    pub root: PathBuf,
    /// Whether the receiver runs as uid 0 (then it chroots into the root and keeps uid/gid 0).
    pub as_root: bool,
    /// Extra groups the daemon should hold (only applied when root: rsync's `gid` list).
    pub supplemental_groups: Vec<u32>,
}

/// The rsyncd.conf the receiver hands to `rsync --server --daemon`: one writable module, nothing else.
pub(crate) fn daemon_config(plan: &DaemonPlan) -> Result<String> {
    let DaemonPlan {
        root,
        as_root,
        supplemental_groups,
    } = plan;
    let root_text = config_value(root)?;
    if !root.is_absolute() {
        return Err(Error::Mover(format!(
            "volume root {} must be an absolute path",
            root.display()
        )));
    }
    let mut conf = String::from("# Generated by ferry mover receive: one module, the volume root.\n");
    conf.push_str("log file = /dev/stderr\n");
    conf.push_str("transfer logging = no\n");
    conf.push_str(&format!("[{MODULE}]\n"));
    conf.push_str(&format!("    path = {root_text}\n"));
    conf.push_str("    read only = no\n");
    conf.push_str("    write only = no\n");
    conf.push_str("    list = no\n");
    conf.push_str("    numeric ids = yes\n");
    // Symlinks are application data and must arrive verbatim. When root, the chroot makes a symlink
    // pointing outside harmless to the daemon itself; without root rsync's path sanitising applies.
    conf.push_str("    munge symlinks = no\n");
    if *as_root {
        conf.push_str("    use chroot = yes\n");
        // rsync's daemon would otherwise drop to nobody and could not set ownership.
        conf.push_str("    uid = 0\n");
        let groups: Vec<String> = std::iter::once(0)
            .chain(supplemental_groups.iter().copied())
            .map(|g| g.to_string())
            .collect();
        conf.push_str(&format!("    gid = {}\n", groups.join(" ")));
    } else {
        conf.push_str("    use chroot = no\n");
    }
    // Never let the client run anything or change where the daemon writes logs.
    conf.push_str("    refuse options = log-file log-file-format write-devices\n");
    Ok(conf)
}

fn config_value(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::Mover(format!("volume root {} is not UTF-8", path.display())))?;
    if text.contains(['\n', '\r']) || text.trim() != text {
        return Err(Error::Mover(format!(
            "volume root {text:?} cannot be written to rsyncd.conf"
        )));
    }
    Ok(text.to_string())
}

/// Whether an rsync exit code counts as success for this run: 0 always, 24 (files vanished) only on a
/// stage of a live tree, never on the final sync.
pub(crate) fn exit_is_success(code: i32, final_sync: bool) -> bool {
    code == 0 || (code == EXIT_VANISHED && !final_sync)
}

/// Whether a failed run is worth retrying: the connection or the protocol stream broke, or timed out.
pub(crate) fn exit_is_retryable(code: i32) -> bool {
    // 5 start-up, 10 socket I/O, 12 protocol stream, 30 I/O timeout, 35 daemon timeout, 255 remote shell.
    matches!(code, 5 | 10 | 12 | 30 | 35 | 255)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SendPlan {
        SendPlan {
            source: "/data".into(),
            rsh: "/bin/ferry mover tunnel".into(),
            checksum: false,
            verify: false,
            omit_dir_times: false,
            selection: Selection::Whole,
            bwlimit_kib: None,
            io_timeout_secs: 300,
            sparse: true,
            compress: false,
            keep_manifest: true,
        }
    }

    #[test]
    fn only_passes_that_keep_a_manifest_protect_it_from_delete() {
        let manifest = "--exclude=/.ferry-manifest".to_string();
        assert!(strings(send_args(&plan())).contains(&manifest));
        let plain = SendPlan {
            keep_manifest: false,
            ..plan()
        };
        let args = strings(send_args(&plain));
        assert!(!args.contains(&manifest), "{args:?}");
        assert!(args.contains(&"--delete".to_string()));
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn stage_args_mirror_the_root_contents_to_the_module() {
        let args = strings(send_args(&plan()));
        for flag in [
            "--hard-links",
            "--numeric-ids",
            "--delete",
            "--sparse",
            "--exclude=/lost+found",
        ] {
            assert!(args.contains(&flag.to_string()), "{flag} missing from {args:?}");
        }
        assert!(args.contains(&format!("--partial-dir={PARTIAL_DIR}")));
        assert!(!args.contains(&"--checksum".to_string()));
        assert!(!args.contains(&"--omit-dir-times".to_string()));
        assert_eq!(&args[args.len() - 2..], ["/data/", "ferry-receiver::ferry/"]);
        let rsh = args.iter().position(|a| a == "--rsh").unwrap();
        assert_eq!(args[rsh + 1], "/bin/ferry mover tunnel");
    }

    #[test]
    fn options_add_their_flags() {
        let plan = SendPlan {
            source: "/data/".into(),
            checksum: true,
            omit_dir_times: true,
            selection: Selection::Listed("/tmp/list".into()),
            bwlimit_kib: Some(1024),
            ..plan()
        };
        let args = strings(send_args(&plan));
        for flag in [
            "--checksum",
            "--omit-dir-times",
            "--files-from=/tmp/list",
            "--from0",
            "--bwlimit=1024",
        ] {
            assert!(args.contains(&flag.to_string()), "{flag} missing from {args:?}");
        }
        assert!(args.contains(&"/data/".to_string()));
        assert!(
            !args.contains(&"--dry-run".to_string()),
            "a checksum sync still writes"
        );
    }

    #[test]
    fn verify_is_a_dry_run_with_the_sync_options_that_itemizes() {
        let sync = strings(send_args(&plan()));
        let verify = strings(send_args(&SendPlan {
            verify: true,
            ..plan()
        }));
        for flag in [
            "--dry-run",
            "--checksum",
            "--itemize-changes",
            "--out-format=ferry-item: %i %n",
        ] {
            assert!(
                verify.contains(&flag.to_string()),
                "{flag} missing from {verify:?}"
            );
        }
        // Everything the sync compares, the verify compares: same options, same source and module.
        for arg in &sync {
            assert!(verify.contains(arg), "{arg} missing from {verify:?}");
        }
        assert_eq!(verify.iter().filter(|arg| *arg == "--checksum").count(), 1);
        assert_eq!(&verify[verify.len() - 2..], ["/data/", "ferry-receiver::ferry/"]);
    }

    #[test]
    fn parallel_passes_skip_missing_units_and_split_dirs_do_not_recurse() {
        let units = strings(send_args(&SendPlan {
            selection: Selection::Units("/tmp/units".into()),
            ..plan()
        }));
        for flag in [
            "--recursive",
            "--files-from=/tmp/units",
            "--from0",
            "--ignore-missing-args",
            "--delete",
        ] {
            assert!(units.contains(&flag.to_string()), "{flag} missing from {units:?}");
        }
        let dirs = strings(send_args(&SendPlan {
            selection: Selection::SplitDirs("/tmp/dirs".into()),
            ..plan()
        }));
        assert!(!dirs.contains(&"--recursive".to_string()), "{dirs:?}");
        for flag in [
            "--dirs",
            "--files-from=/tmp/dirs",
            "--ignore-missing-args",
            "--delete",
        ] {
            assert!(dirs.contains(&flag.to_string()), "{flag} missing from {dirs:?}");
        }
        let whole = strings(send_args(&plan()));
        assert!(
            !whole
                .iter()
                .any(|arg| arg.starts_with("--files-from") || arg == "--ignore-missing-args")
        );
    }

    #[test]
    fn a_delta_pass_lists_exactly_its_paths_and_deletes_missing_ones() {
        let args = strings(send_args(&SendPlan {
            selection: Selection::Changes("/tmp/changes".into()),
            sparse: false,
            ..plan()
        }));
        for flag in [
            "--files-from=/tmp/changes",
            "--from0",
            "--delete-missing-args",
            "--force",
            "--ignore-times",
            "--hard-links",
            "--exclude=/.ferry-manifest",
        ] {
            assert!(args.contains(&flag.to_string()), "{flag} missing from {args:?}");
        }
        for flag in ["--recursive", "--delete", "--delete-during", "--sparse"] {
            assert!(!args.contains(&flag.to_string()), "{flag} in {args:?}");
        }
        let root = strings(send_args(&SendPlan {
            selection: Selection::RootOnly,
            ..plan()
        }));
        assert!(root.contains(&"--dirs".to_string()) && root.contains(&"--exclude=/*".to_string()));
        assert!(
            !root
                .iter()
                .any(|arg| arg == "--recursive" || arg.starts_with("--delete"))
        );
    }

    #[test]
    fn sparse_and_compress_only_when_asked() {
        let dense = strings(send_args(&SendPlan {
            sparse: false,
            ..plan()
        }));
        assert!(!dense.contains(&"--sparse".to_string()));
        assert!(!dense.iter().any(|arg| arg.starts_with("--compress")));
        let compressed = strings(send_args(&SendPlan {
            compress: true,
            ..plan()
        }));
        assert!(compressed.contains(&"--compress".to_string()));
        assert!(compressed.contains(&"--compress-choice=zstd".to_string()));
    }

    #[test]
    fn the_manifest_is_peeked_or_pulled_and_removed_in_one_run_and_written_in_place() {
        let fetch = |how| strings(manifest_fetch_args("tunnel", Path::new("/tmp/x"), how, false, 30));
        let tail = [
            "--rsh",
            "tunnel",
            "ferry-receiver::ferry/.ferry-manifest",
            "/tmp/x/",
        ];
        let consume = fetch(ManifestFetch::Consume { basis: None });
        assert_eq!(
            consume[..3],
            ["--remove-source-files", "--ignore-missing-args", "--timeout=30"]
        );
        assert_eq!(consume[3..], tail);
        let peek = fetch(ManifestFetch::Peek);
        assert_eq!(
            peek[..2],
            ["--ignore-missing-args", "--timeout=30"],
            "a peek removes nothing"
        );
        assert_eq!(peek[2..], tail);
        let warm = fetch(ManifestFetch::Consume {
            basis: Some(Path::new("/tmp/x/basis")),
        });
        assert_eq!(
            warm[..5],
            [
                "--remove-source-files",
                "--ignore-missing-args",
                "--checksum",
                "--link-dest=/tmp/x/basis",
                "--timeout=30"
            ]
        );
        assert_eq!(warm[5..], tail);
        let upload = strings(manifest_upload_args(
            "tunnel",
            Path::new("/tmp/x/.ferry-manifest"),
            true,
            30,
        ));
        assert!(upload.contains(&"--inplace".to_string()) && upload.contains(&"--compress".to_string()));
        assert_eq!(
            &upload[upload.len() - 2..],
            ["/tmp/x/.ferry-manifest", "ferry-receiver::ferry/"]
        );
        assert!(
            ARCHIVE_OPTIONS.contains(&format!("--exclude=/{}", super::super::manifest::FILE_NAME).as_str())
        );
    }

    #[test]
    fn rsh_words_are_quoted_only_when_needed() {
        assert_eq!(rsh_word("/usr/bin/ferry"), "/usr/bin/ferry");
        assert_eq!(rsh_word("/my dir/ferry"), "'/my dir/ferry'");
        assert_eq!(rsh_word("it's"), "'it'\"'\"'s'");
    }

    #[test]
    fn root_daemon_chroots_and_keeps_ids() {
        let conf = daemon_config(&DaemonPlan {
            root: "/volume".into(),
            as_root: true,
            supplemental_groups: vec![1000, 2000],
        })
        .unwrap();
        assert!(conf.contains("[ferry]\n    path = /volume\n"));
        assert!(conf.contains("use chroot = yes"));
        assert!(conf.contains("uid = 0\n"));
        assert!(conf.contains("gid = 0 1000 2000\n"));
        assert_eq!(conf.matches('[').count(), 1, "exactly one module");
    }

    #[test]
    fn non_root_daemon_does_not_chroot_or_switch_ids() {
        let conf = daemon_config(&DaemonPlan {
            root: "/v".into(),
            as_root: false,
            supplemental_groups: vec![5],
        })
        .unwrap();
        assert!(conf.contains("use chroot = no"));
        assert!(!conf.contains("uid ="));
        assert!(!conf.contains("gid ="));
    }

    #[test]
    fn odd_roots_are_refused() {
        for root in ["relative", "/a\nb", "/trailing "] {
            let plan = DaemonPlan {
                root: root.into(),
                as_root: false,
                supplemental_groups: vec![],
            };
            assert!(daemon_config(&plan).is_err(), "{root:?}");
        }
    }

    #[test]
    fn vanished_files_pass_only_on_stage() {
        assert!(exit_is_success(0, true));
        assert!(exit_is_success(24, false));
        assert!(!exit_is_success(24, true));
        assert!(!exit_is_success(23, false));
        assert!(exit_is_retryable(12));
        assert!(!exit_is_retryable(23));
    }
}
