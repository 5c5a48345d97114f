//! The source walk of a delta pass: every entry's metadata (stat only, no file is opened), read by
//! several threads a directory level at a time, returned in scan order (the root, then depth first with
//! each directory's children sorted by name bytes), the order [`super::manifest`] stores and
//! [`super::delta`] merges on.
//!
//! Blocking: run it off the async runtime. Entries that vanish during the walk are skipped (a stage
//! races with the live app; the entry then counts as deleted, and a later pass sees it again).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::manifest::{Entry, Kind};
use crate::{Error, Result};

/// Threads that stat at once: a directory read and its stats are system calls, so a few more threads
/// than cores keep the cores busy while others wait on the disk.
const MAX_THREADS: usize = 8;

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TreeScan {
    /// Every entry, the root (empty path) first, in scan order.
    pub entries: Vec<Entry>,
    /// Directories that exist but could not be listed (permissions): their entries would look deleted,
    /// so a pass after such a scan must not trust a comparison with the manifest.
    pub unreadable: u64,
}

impl TreeScan {
    /// Entries including the root (rsync's "Number of files") and the sum of file and symlink sizes.
    pub fn totals(&self) -> (u64, u64) {
        let size = self
            .entries
            .iter()
            .filter(|entry| matches!(entry.kind, Kind::File | Kind::Symlink))
            .map(|entry| entry.size)
            .sum();
        (self.entries.len() as u64, size)
    }
}

/// A directory's entries, sorted by name; for each a child directory's index once assigned.
type Children = Vec<(Entry, Option<usize>)>;

/// A directory's children as read, before they are put in scan order.
struct Listing {
    /// Index of the directory in `dirs`.
    dir: usize,
    /// `None`: the directory exists but cannot be listed.
    children: Option<Children>,
}

/// Walks `root` without following symlinks. Skips the root-level names in `excluded_at_root` (rsync's
/// anchored excludes) and every entry named `excluded_anywhere` (rsync's partial dir, which it
/// excludes at every level on its own).
pub(crate) fn scan(root: &Path, excluded_at_root: &[&str], excluded_anywhere: &str) -> Result<TreeScan> {
    let root_meta = std::fs::symlink_metadata(root)
        .map_err(Error::io(format!("reading the source root {}", root.display())))?;
    if !root_meta.is_dir() {
        return Err(Error::Mover(format!(
            "source {} is not a directory",
            root.display()
        )));
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(2, MAX_THREADS);
    // dirs[i] = relative path of directory i; listings[i] = its children once read.
    let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
    let mut listings: Vec<Option<Children>> = vec![None];
    let mut level: Vec<usize> = vec![0];
    let mut unreadable = 0;
    while !level.is_empty() {
        let chunk = level.len().div_ceil(threads);
        let read: Vec<Listing> = std::thread::scope(|scope| {
            let workers: Vec<_> = level
                .chunks(chunk)
                .map(|part| {
                    let dirs = &dirs;
                    scope.spawn(move || {
                        part.iter()
                            .map(|&dir| Listing {
                                dir,
                                children: read_children(
                                    root,
                                    &dirs[dir],
                                    dir == 0,
                                    excluded_at_root,
                                    excluded_anywhere,
                                ),
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap_or_default())
                .collect()
        });
        let mut next = Vec::new();
        for listing in read {
            let Some(mut children) = listing.children else {
                unreadable += 1;
                continue;
            };
            for (entry, index) in &mut children {
                if entry.kind == Kind::Dir {
                    *index = Some(dirs.len());
                    next.push(dirs.len());
                    dirs.push(entry.path.clone());
                    listings.push(None);
                }
            }
            listings[listing.dir] = Some(children);
        }
        level = next;
    }
    let mut entries = Vec::with_capacity(listings.iter().flatten().map(Vec::len).sum::<usize>() + 1);
    entries.push(entry_of(Vec::new(), &root_meta, None));
    // Depth first without recursion (a deep tree must not overflow the stack).
    let mut stack: Vec<std::vec::IntoIter<(Entry, Option<usize>)>> =
        vec![listings[0].take().unwrap_or_default().into_iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            Some((entry, index)) => {
                entries.push(entry);
                if let Some(children) = index.and_then(|index| listings[index].take()) {
                    stack.push(children.into_iter());
                }
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(TreeScan { entries, unreadable })
}

fn read_children(
    root: &Path,
    relative: &[u8],
    at_root: bool,
    excluded_at_root: &[&str],
    excluded_anywhere: &str,
) -> Option<Children> {
    let dir = root.join(OsStr::from_bytes(relative));
    // A directory that vanished is skipped like any vanished entry; one that cannot be read is
    // reported (rsync says what it cannot read when it comes to it).
    let reader = match std::fs::read_dir(&dir) {
        Ok(reader) => reader,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut children: Children = reader
        .filter_map(|item| {
            let item = item.ok()?;
            let name = item.file_name();
            let skipped = name.as_bytes() == excluded_anywhere.as_bytes()
                || (at_root
                    && excluded_at_root
                        .iter()
                        .any(|skip| name.as_bytes() == skip.as_bytes()));
            if skipped {
                return None;
            }
            let meta = item.metadata().ok()?;
            let mut path = Vec::with_capacity(relative.len() + 1 + name.len());
            if !relative.is_empty() {
                path.extend_from_slice(relative);
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            // The full path is only needed to read a symlink's target: build it only then.
            let full = meta.file_type().is_symlink().then(|| item.path());
            Some((entry_of(path, &meta, full.as_deref()), None))
        })
        .collect();
    children.sort_unstable_by(|a, b| a.0.path.cmp(&b.0.path));
    Some(children)
}

/// `full`: the entry's path on disk, given for symlinks (their target is read from it).
fn entry_of(path: Vec<u8>, meta: &std::fs::Metadata, full: Option<&Path>) -> Entry {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Special
    };
    let target = match full {
        Some(full) if kind == Kind::Symlink => std::fs::read_link(full)
            .map(|target| target.as_os_str().as_bytes().to_vec())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Entry {
        path,
        kind,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        // A directory's size says nothing rsync copies (and differs between filesystems).
        size: if kind == Kind::Dir { 0 } else { meta.size() },
        mtime: (meta.mtime(), meta.mtime_nsec() as u32),
        ctime: (meta.ctime(), meta.ctime_nsec() as u32),
        inode: meta.ino(),
        links: meta.nlink(),
        rdev: meta.rdev(),
        target,
        sparse: kind == Kind::File && meta.blocks().saturating_mul(512) < meta.size(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_root_first_depth_first_with_names_sorted_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in ["a/b", "a-c", "z/.ferry-partial", "lost+found"] {
            std::fs::create_dir_all(root.join(path)).unwrap();
        }
        std::fs::write(root.join("a/b/f"), "data").unwrap();
        std::fs::write(root.join("a/b/.ferry-partial"), "skipped anywhere").unwrap();
        std::fs::write(root.join("skip-me"), "root only").unwrap();
        std::fs::write(root.join("a/skip-me"), "kept below the root").unwrap();
        std::os::unix::fs::symlink("a/b/f", root.join("link")).unwrap();
        let sparse = std::fs::File::create(root.join("holes")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        let scan = scan(root, &["lost+found", "skip-me"], ".ferry-partial").unwrap();
        let paths: Vec<&[u8]> = scan.entries.iter().map(|e| &e.path[..]).collect();
        let expected: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"a/b",
            b"a/b/f",
            b"a/skip-me",
            b"a-c",
            b"holes",
            b"link",
            b"z",
        ];
        assert_eq!(paths, expected);
        let link = scan.entries.iter().find(|e| e.path == b"link").unwrap();
        assert_eq!((link.kind, &link.target[..]), (Kind::Symlink, &b"a/b/f"[..]));
        let holes = scan.entries.iter().find(|e| e.path == b"holes").unwrap();
        assert!(holes.sparse);
        assert!(!scan.entries.iter().find(|e| e.path == b"a/b/f").unwrap().sparse);
        assert_eq!(scan.totals(), (9, 4 + 19 + 5 + (1 << 20)));
    }
}
