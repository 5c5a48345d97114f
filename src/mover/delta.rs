//! What a delta pass hands rsync: the paths that changed on the source since the manifest was written,
//! computed by merging the manifest with a fresh scan (both in scan order), and the rule for when a
//! full pass is the better choice. Pure; docs/mover.md ("Delta passes") gives the why of each rule.
//!
//! * An entry changed when anything a sync sets or that betrays a write differs: kind, mode, owner,
//!   group, size, mtime, **ctime**, inode, link count, device number, symlink target. ctime cannot be
//!   set by a user: an edit that kept size and restored mtime still moves it (rsync's own quick check
//!   misses that edit; the delta pass runs with `--ignore-times`, so the listed file is compared).
//! * A deleted path is listed as a missing argument (`--delete-missing-args`), only the topmost one: the
//!   entries below a deleted directory, or below a directory that became a file, go with it (`--force`).
//! * Every name of a hard-linked inode that changed is listed (rsync links only what it transfers
//!   together), and so are the names the inode had in the manifest that still exist.
//! * Every listed path's parent directories are listed too: rsync's writes move their mtimes on the
//!   target, and a listed directory gets its attributes set again (without its contents: `--dirs`).
//!   The root is never listed (a listed `.` means its whole first level); a pass of its own sets it.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::manifest::{Entry, Kind};

/// A change set larger than this fraction of the tree goes in a full pass: it would cost about as
/// much, and a full pass can be cut into parallel streams...
const MAX_DELTA_FRACTION: (u64, u64) = (1, 2);
/// ...unless it is this small: then either pass takes a moment, and the delta pass is the one tested
/// on small trees.
const ALWAYS_DELTA_BELOW: u64 = 1000;

/// What a delta pass sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ChangeSet {
    /// Paths for `--files-from` (relative, raw bytes), sorted and unique: changed and new entries, the
    /// hard-link partners and parents they pull in, and deletions.
    pub list: Vec<Vec<u8>>,
    /// Entries changed or new on the source.
    pub changed: u64,
    /// Topmost paths deleted on the source.
    pub deleted: u64,
    /// Whether a listed file has holes (then, and only then, rsync gets `--sparse`).
    pub sparse: bool,
}

impl ChangeSet {
    /// The list as `--files-from --from0` reads it.
    pub fn files_from(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.list.iter().map(|path| path.len() + 1).sum());
        for path in &self.list {
            out.extend_from_slice(path);
            out.push(0);
        }
        out
    }

    /// Whether the change set is too large for a delta pass to pay off (see [`MAX_DELTA_FRACTION`]).
    pub fn too_large_for(&self, entries: usize) -> bool {
        let (num, den) = MAX_DELTA_FRACTION;
        let size = self.changed + self.deleted;
        size >= ALWAYS_DELTA_BELOW && size * den > entries as u64 * num
    }
}

/// The scan order as a comparison: paths compared component by component, which is byte order with
/// the separator below every other byte (a parent right before its children, children by name).
pub(crate) fn scan_order(a: &[u8], b: &[u8]) -> Ordering {
    // Most pairs a merge compares are the same path (an unchanged tree): one memcmp says so.
    if a == b {
        return Ordering::Equal;
    }
    let key = |byte: &u8| if *byte == b'/' { 0 } else { *byte };
    a.iter().map(key).cmp(b.iter().map(key))
}

fn differs(old: &Entry, new: &Entry) -> bool {
    old.kind != new.kind
        || old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.size != new.size
        || old.mtime != new.mtime
        || old.ctime != new.ctime
        || old.inode != new.inode
        || old.links != new.links
        || old.rdev != new.rdev
        || old.target != new.target
}

fn is_below(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Merges the manifest (`old`) with the scan (`new`), both in scan order; the roots (empty paths) are
/// left out.
pub(crate) fn changes(old: &[Entry], new: &[Entry]) -> ChangeSet {
    let linked = |entries: &[Entry]| {
        let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            if entry.kind != Kind::Dir && entry.links > 1 {
                groups.entry(entry.inode).or_default().push(index);
            }
        }
        groups
    };
    let (old_groups, new_groups) = (linked(old), linked(new));
    let new_linked: HashSet<&[u8]> = new_groups.values().flatten().map(|&i| &new[i].path[..]).collect();

    let mut set = ChangeSet::default();
    let mut listed: BTreeSet<Vec<u8>> = BTreeSet::new();
    let pull_in =
        |set: &mut ChangeSet, listed: &mut BTreeSet<Vec<u8>>, was: Option<&Entry>, now: Option<&Entry>| {
            if let Some(entry) = now.filter(|entry| entry.kind != Kind::Dir && entry.links > 1) {
                for &index in new_groups.get(&entry.inode).into_iter().flatten() {
                    set.sparse |= new_entry_sparse(&new[index]);
                    listed.insert(new[index].path.clone());
                }
            }
            if let Some(entry) = was.filter(|entry| entry.kind != Kind::Dir && entry.links > 1) {
                for &index in old_groups.get(&entry.inode).into_iter().flatten() {
                    if new_linked.contains(&old[index].path[..]) {
                        listed.insert(old[index].path.clone());
                    }
                }
            }
        };

    let (mut i, mut j) = (0, 0);
    // The last directory deleted or replaced by a non-directory: what lies below it goes with it.
    let mut gone_dir: Option<&[u8]> = None;
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => scan_order(&o.path, &n.path),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Equal => {
                let (o, n) = (&old[i], &new[j]);
                if !n.path.is_empty() && differs(o, n) {
                    set.changed += 1;
                    set.sparse |= new_entry_sparse(n);
                    listed.insert(n.path.clone());
                    if o.kind == Kind::Dir && n.kind != Kind::Dir {
                        gone_dir = Some(&o.path);
                    }
                    pull_in(&mut set, &mut listed, Some(o), Some(n));
                }
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                let o = &old[i];
                let below_gone = gone_dir.is_some_and(|dir| is_below(&o.path, dir));
                if !below_gone && !o.path.is_empty() {
                    set.deleted += 1;
                    listed.insert(o.path.clone());
                    if o.kind == Kind::Dir {
                        gone_dir = Some(&o.path);
                    }
                    pull_in(&mut set, &mut listed, Some(o), None);
                }
                i += 1;
            }
            Ordering::Greater => {
                let n = &new[j];
                if !n.path.is_empty() {
                    set.changed += 1;
                    set.sparse |= new_entry_sparse(n);
                    listed.insert(n.path.clone());
                    pull_in(&mut set, &mut listed, None, Some(n));
                }
                j += 1;
            }
        }
    }
    let parents: Vec<Vec<u8>> = listed
        .iter()
        .flat_map(|path| {
            path.iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'/')
                .map(|(at, _)| path[..at].to_vec())
        })
        .collect();
    listed.extend(parents);
    set.list = listed.into_iter().collect();
    set
}

fn new_entry_sparse(entry: &Entry) -> bool {
    entry.kind == Kind::File && entry.sparse
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mover::manifest::tests::entry;

    fn tree(paths: &[(&str, Kind)]) -> Vec<Entry> {
        let mut entries: Vec<Entry> = std::iter::once(entry(b"", Kind::Dir))
            .chain(paths.iter().map(|(path, kind)| entry(path.as_bytes(), *kind)))
            .collect();
        entries.sort_by(|a, b| scan_order(&a.path, &b.path));
        entries
    }

    fn listed(set: &ChangeSet) -> Vec<String> {
        set.list
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    #[test]
    fn scan_order_puts_parents_before_children_and_children_by_name() {
        let mut paths: Vec<&[u8]> = vec![b"a-c", b"a/b", b"a", b"", b"a/b/c", b"b"];
        paths.sort_by(|a, b| scan_order(a, b));
        assert_eq!(paths, vec![&b""[..], b"a", b"a/b", b"a/b/c", b"a-c", b"b"]);
    }

    #[test]
    fn nothing_changed_lists_nothing() {
        let old = tree(&[("d", Kind::Dir), ("d/f", Kind::File)]);
        assert_eq!(changes(&old, &old), ChangeSet::default());
    }

    #[test]
    fn a_ctime_only_change_lists_the_file_and_its_parents_but_not_the_root() {
        let old = tree(&[
            ("d", Kind::Dir),
            ("d/e", Kind::Dir),
            ("d/e/f", Kind::File),
            ("g", Kind::File),
        ]);
        let mut new = old.clone();
        new[3].ctime.1 += 1;
        let set = changes(&old, &new);
        assert_eq!(listed(&set), ["d", "d/e", "d/e/f"]);
        assert_eq!((set.changed, set.deleted), (1, 0));
        let mut root_only = old.clone();
        root_only[0].mtime.0 += 1;
        assert!(
            changes(&old, &root_only).list.is_empty(),
            "the root has a pass of its own"
        );
    }

    #[test]
    fn only_the_topmost_deletion_is_listed() {
        let old = tree(&[
            ("d", Kind::Dir),
            ("d/x", Kind::Dir),
            ("d/x/y", Kind::File),
            ("d/z", Kind::File),
            ("e", Kind::Dir),
            ("e/f", Kind::File),
        ]);
        let new = tree(&[("d", Kind::Dir), ("e", Kind::File)]);
        let set = changes(&old, &new);
        assert_eq!(listed(&set), ["d", "d/x", "d/z", "e"]);
        assert_eq!((set.changed, set.deleted), (1, 2));
    }

    #[test]
    fn a_file_that_became_a_directory_lists_its_new_contents() {
        let old = tree(&[("p", Kind::File)]);
        let new = tree(&[("p", Kind::Dir), ("p/q", Kind::File)]);
        assert_eq!(listed(&changes(&old, &new)), ["p", "p/q"]);
    }

    #[test]
    fn every_name_of_a_changed_hard_link_is_listed_old_and_new() {
        let mut old = tree(&[
            ("a", Kind::File),
            ("b", Kind::File),
            ("c", Kind::File),
            ("z/c2", Kind::File),
        ]);
        for entry in &mut old[1..] {
            entry.links = 2;
        }
        old[1].inode = 7; // a
        old[2].inode = 7; // b
        old[3].inode = 8; // c
        old[4].inode = 8; // z/c2
        let mut new = old.clone();
        // b is re-linked to c's inode; a keeps inode 7 alone (its ctime is not even touched here).
        new[2].inode = 8;
        new[2].links = 3;
        new[3].links = 3;
        new[4].links = 3;
        new[1].links = 1;
        let set = changes(&old, &new);
        assert_eq!(listed(&set), ["a", "b", "c", "z", "z/c2"]);
    }

    #[test]
    fn sparse_counts_only_for_listed_files_and_large_sets_are_flagged() {
        let old = tree(&[("a", Kind::File), ("b", Kind::File)]);
        let mut new = old.clone();
        new[1].sparse = true;
        assert!(
            !changes(&old, &new).sparse,
            "an unchanged sparse file needs no --sparse"
        );
        new[2].sparse = true;
        new[2].size = 9;
        let set = changes(&old, &new);
        assert!(set.sparse);
        assert!(!set.too_large_for(new.len()));
        new[1].size = 9;
        let both = changes(&old, &new);
        assert!(
            !both.too_large_for(new.len()),
            "a small change set is always a delta"
        );
        let large = ChangeSet {
            changed: 1500,
            deleted: 10,
            ..ChangeSet::default()
        };
        assert!(large.too_large_for(3000));
        assert!(!large.too_large_for(3100));
    }
}
