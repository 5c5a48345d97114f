//! Splitting one sync into several rsync streams over disjoint parts of the tree (`--parallel N`).
//!
//! One rsync stream is a pipeline of single-threaded processes; on many small files its receiver (one
//! `open`/`write`/`rename`/`chown` after another) leaves cores idle, and on large files the TLS hop
//! competes with it. Several streams, each over its own connection, keep every core busy.
//!
//! How a tree is cut, and why each rule exists:
//! * **Units** are paths handed whole to one stream (`--files-from`, recursive, `--delete` inside). They
//!   start as the root's entries; while there are fewer than [`UNITS_PER_STREAM`] × N and the heaviest
//!   unit is a directory holding more than a stream's fair share, it is replaced by its entries (to
//!   [`MAX_SPLIT_DEPTH`]), so one big `pgdata/` still spreads over the streams.
//! * **Split directories** (the root and every directory replaced by its entries) are mirrored level by
//!   level by a non-recursive pass (`--dirs --delete --max-size=0`: folders, links and deletions, no file
//!   data), run before the streams (it creates the directories and deletes what is gone, freeing space
//!   early) and after them (directory mtimes, which the streams' writes change, and entries that
//!   vanished meanwhile).
//! * **Hard links** must stay inside one stream for rsync to recreate them: units sharing an inode are
//!   merged before they are dealt out.
//! * **Weights** are bytes plus [`ENTRY_WEIGHT`] per entry (a 4 KiB file costs about as much as 32 KiB of
//!   a large one); units are dealt heaviest first to the lightest stream.
//!
//! [`scan`] reads the tree (blocking; run it off the async runtime); [`plan`] is pure and unit-tested.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Cost of one entry in bytes-equivalent, on top of its size.
pub(crate) const ENTRY_WEIGHT: u64 = 32 * 1024;
/// Aim for at least this many units per stream, so dealing them out can balance the streams.
pub(crate) const UNITS_PER_STREAM: usize = 4;
/// Directories deeper than this are never split (the non-recursive passes list every split level).
pub(crate) const MAX_SPLIT_DEPTH: usize = 3;
/// A directory with more entries than this is never split, so the scan's memory stays bounded (each
/// kept entry costs about 100 bytes; rsync's own file list costs as much per file).
pub(crate) const MAX_SPLIT_ENTRIES: usize = 200_000;

/// What [`scan`] learns: a weight tree down to [`MAX_SPLIT_DEPTH`], hard-linked files, and totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The root's entries.
    pub entries: Vec<Node>,
    /// Paths (relative to the root) of files with more than one link, grouped by inode.
    pub hard_links: Vec<Vec<PathBuf>>,
    /// Entries below the root, plus the root itself (what rsync's "Number of files" counts).
    pub entry_count: u64,
    /// Sizes of regular files and symlinks (rsync's "Total file size").
    pub total_size: u64,
    /// Whether a regular file has holes (fewer blocks than its size needs): only then `--sparse`.
    pub sparse: bool,
}

/// One entry of the tree with the weight of everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Path relative to the root.
    pub path: PathBuf,
    /// Bytes plus [`ENTRY_WEIGHT`] per entry, itself included.
    pub weight: u64,
    /// For a directory within [`MAX_SPLIT_DEPTH`]: its entries; `None` for anything that cannot split.
    pub children: Option<Vec<Node>>,
}

/// How one sync is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardPlan {
    /// Directories mirrored one level deep by the passes before and after the streams, root first.
    pub split_dirs: Vec<PathBuf>,
    /// The units of each stream (at least two streams, none empty).
    pub streams: Vec<Vec<PathBuf>>,
}

/// Walks `root` without following symlinks, skipping the root-level names in `excluded` (rsync's
/// anchored excludes, e.g. `lost+found`). Entries that vanish during the walk are skipped: a stage of a
/// live volume races with the app, and rsync reports what it cannot send.
pub(crate) fn scan(root: &Path, excluded: &[&str]) -> Result<Scan> {
    let mut scan = Scan {
        entry_count: 1,
        ..Scan::default()
    };
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let entries = read_dir_sorted(root, Path::new(""))
        .map_err(Error::io(format!("reading the source root {}", root.display())))?
        .into_iter()
        .filter(|name| !excluded.iter().any(|skip| name.as_os_str() == *skip))
        .filter_map(|relative| walk(root, relative, 1, &mut scan, &mut inodes))
        .collect();
    scan.entries = entries;
    let mut groups: Vec<Vec<PathBuf>> = inodes.into_values().filter(|paths| paths.len() > 1).collect();
    groups.sort();
    scan.hard_links = groups;
    Ok(scan)
}

fn walk(
    root: &Path,
    relative: PathBuf,
    depth: usize,
    scan: &mut Scan,
    inodes: &mut HashMap<(u64, u64), Vec<PathBuf>>,
) -> Option<Node> {
    let meta = std::fs::symlink_metadata(root.join(&relative)).ok()?;
    scan.entry_count += 1;
    let mut weight = ENTRY_WEIGHT;
    if meta.is_file() || meta.file_type().is_symlink() {
        scan.total_size += meta.len();
        weight += meta.len();
    }
    if meta.is_file() && meta.blocks().saturating_mul(512) < meta.len() {
        scan.sparse = true;
    }
    if meta.is_file() && meta.nlink() > 1 {
        inodes
            .entry((meta.dev(), meta.ino()))
            .or_default()
            .push(relative.clone());
    }
    if !meta.is_dir() {
        return Some(Node {
            path: relative,
            weight,
            children: None,
        });
    }
    let names = read_dir_sorted(root, &relative).unwrap_or_default();
    let mut children = Vec::new();
    for child in names {
        if let Some(node) = walk(root, child, depth + 1, scan, inodes) {
            weight += node.weight;
            if depth < MAX_SPLIT_DEPTH {
                children.push(node);
            }
        }
    }
    let splittable = depth < MAX_SPLIT_DEPTH && children.len() <= MAX_SPLIT_ENTRIES;
    Some(Node {
        path: relative,
        weight,
        children: splittable.then_some(children),
    })
}

fn read_dir_sorted(root: &Path, relative: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(root.join(relative))?
        .filter_map(|entry| entry.ok())
        .map(|entry| relative.join(entry.file_name()))
        .collect();
    names.sort();
    Ok(names)
}

/// Cuts a scanned tree for `streams` streams; `None` when it does not split into two or more (one
/// stream, a tree weighing less than `min_weight`, where the extra passes and connections cost more than
/// they gain, or everything hard-linked together).
pub(crate) fn plan(scan: &Scan, streams: usize, min_weight: u64) -> Option<ShardPlan> {
    let total: u64 = scan.entries.iter().map(|node| node.weight).sum();
    if streams < 2 || scan.entries.is_empty() || total < min_weight {
        return None;
    }
    let fair_share = total / streams as u64;
    let mut split_dirs = vec![PathBuf::new()];
    let mut units: Vec<Node> = scan.entries.clone();
    while units.len() < streams * UNITS_PER_STREAM {
        let heaviest = units
            .iter()
            .enumerate()
            .filter(|(_, node)| {
                node.weight > fair_share && node.children.as_ref().is_some_and(|c| !c.is_empty())
            })
            .max_by_key(|(_, node)| node.weight)
            .map(|(index, _)| index);
        let Some(index) = heaviest else { break };
        let node = units.swap_remove(index);
        split_dirs.push(node.path);
        units.extend(node.children.unwrap_or_default());
    }
    let groups = merge_hard_linked(units, &scan.hard_links);
    if groups.len() < 2 {
        return None;
    }
    // Heaviest first, each to the lightest stream so far (ties: the lowest index, for stable plans).
    let mut groups = groups;
    groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let count = streams.min(groups.len());
    let mut loads = vec![0u64; count];
    let mut dealt: Vec<Vec<PathBuf>> = vec![Vec::new(); count];
    for (weight, paths) in groups {
        let lightest = (0..count).min_by_key(|&i| (loads[i], i)).unwrap_or(0);
        loads[lightest] += weight;
        dealt[lightest].extend(paths);
    }
    for paths in &mut dealt {
        paths.sort();
    }
    split_dirs.sort();
    Some(ShardPlan {
        split_dirs,
        streams: dealt,
    })
}

/// Joins units that share a hard-linked inode; returns (weight, paths) per group.
fn merge_hard_linked(units: Vec<Node>, hard_links: &[Vec<PathBuf>]) -> Vec<(u64, Vec<PathBuf>)> {
    let index_of: BTreeMap<PathBuf, usize> = units
        .iter()
        .enumerate()
        .map(|(index, node)| (node.path.clone(), index))
        .collect();
    let unit_of = |path: &Path| {
        path.ancestors()
            .find_map(|ancestor| index_of.get(ancestor).copied())
    };
    let mut parent: Vec<usize> = (0..units.len()).collect();
    fn find(parent: &mut [usize], mut at: usize) -> usize {
        while parent[at] != at {
            parent[at] = parent[parent[at]];
            at = parent[at];
        }
        at
    }
    for group in hard_links {
        let mut members = group.iter().filter_map(|path| unit_of(path));
        let Some(first) = members.next() else { continue };
        for other in members {
            let (a, b) = (find(&mut parent, first), find(&mut parent, other));
            parent[b.max(a)] = b.min(a);
        }
    }
    let mut merged: BTreeMap<usize, (u64, Vec<PathBuf>)> = BTreeMap::new();
    for (index, node) in units.into_iter().enumerate() {
        let root = find(&mut parent, index);
        let entry = merged.entry(root).or_default();
        entry.0 += node.weight;
        entry.1.push(node.path);
    }
    merged.into_values().collect()
}

/// A NUL-separated `--files-from` list of `paths`.
pub(crate) fn files_from_list(paths: &[PathBuf]) -> Vec<u8> {
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(path.as_os_str().as_bytes());
        list.push(0);
    }
    list
}

/// The `--files-from` list of the non-recursive passes: `./` for the root and `dir/.` for every other
/// split directory (with `--dirs`, rsync mirrors a listed directory's entries only when its name ends
/// in `.` or `/`).
pub(crate) fn split_dirs_list(split_dirs: &[PathBuf]) -> Vec<u8> {
    let entries: Vec<PathBuf> = split_dirs
        .iter()
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from("./")
            } else {
                let mut with_dot = OsString::from(dir.as_os_str()).into_vec();
                with_dot.extend_from_slice(b"/.");
                PathBuf::from(OsString::from_vec(with_dot))
            }
        })
        .collect();
    files_from_list(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Node {
        Node {
            path: path.into(),
            weight: size + ENTRY_WEIGHT,
            children: None,
        }
    }

    fn dir(path: &str, children: Vec<Node>) -> Node {
        Node {
            path: path.into(),
            weight: ENTRY_WEIGHT + children.iter().map(|c| c.weight).sum::<u64>(),
            children: Some(children),
        }
    }

    fn scan_of(entries: Vec<Node>) -> Scan {
        Scan {
            entries,
            ..Scan::default()
        }
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn one_stream_or_an_empty_tree_is_not_split() {
        assert_eq!(plan(&scan_of(vec![file("a", 1), file("b", 1)]), 1, 0), None);
        assert_eq!(plan(&scan_of(vec![]), 4, 0), None);
    }

    #[test]
    fn root_entries_are_dealt_heaviest_first_to_the_lightest_stream() {
        let scan = scan_of(
            (0..8)
                .map(|i| file(&format!("f{i}"), (i as u64 + 1) << 20))
                .collect(),
        );
        let plan = plan(&scan, 2, 0).unwrap();
        assert_eq!(plan.split_dirs, paths(&[""]));
        assert_eq!(plan.streams.len(), 2);
        // 8+5+4+1 = 18 MiB and 7+6+3+2 = 18 MiB.
        assert_eq!(plan.streams[0], paths(&["f0", "f3", "f4", "f7"]));
        assert_eq!(plan.streams[1], paths(&["f1", "f2", "f5", "f6"]));
    }

    #[test]
    fn one_big_directory_is_split_into_its_entries() {
        let pgdata = dir(
            "pgdata",
            vec![
                dir(
                    "pgdata/base",
                    (0..6)
                        .map(|i| file(&format!("pgdata/base/{i}"), 8 << 20))
                        .collect(),
                ),
                file("pgdata/PG_VERSION", 3),
                dir("pgdata/pg_wal", vec![file("pgdata/pg_wal/000001", 16 << 20)]),
            ],
        );
        let plan = plan(&scan_of(vec![pgdata, file("README", 10)]), 2, 0).unwrap();
        // The root, pgdata and pgdata/base are mirrored level by level; everything else is a unit.
        assert_eq!(plan.split_dirs, paths(&["", "pgdata", "pgdata/base"]));
        let mut all: Vec<PathBuf> = plan.streams.concat();
        all.sort();
        assert_eq!(
            all,
            paths(&[
                "README",
                "pgdata/PG_VERSION",
                "pgdata/base/0",
                "pgdata/base/1",
                "pgdata/base/2",
                "pgdata/base/3",
                "pgdata/base/4",
                "pgdata/base/5",
                "pgdata/pg_wal",
            ])
        );
        let load =
            |units: &[PathBuf]| -> usize { units.iter().filter(|p| p.starts_with("pgdata/base")).count() };
        assert_eq!(load(&plan.streams[0]) + load(&plan.streams[1]), 6);
        assert!(
            load(&plan.streams[0]) >= 2 && load(&plan.streams[1]) >= 2,
            "{plan:?}"
        );
    }

    #[test]
    fn units_sharing_a_hard_link_go_to_the_same_stream() {
        let scan = Scan {
            entries: vec![
                dir("data", vec![file("data/new-file", 10), file("data/other", 10)]),
                dir("new-dir", vec![file("new-dir/new-hardlink", 10)]),
                file("x", 10),
                file("y", 10),
            ],
            hard_links: vec![paths(&["data/new-file", "new-dir/new-hardlink"])],
            ..Scan::default()
        };
        let plan = plan(&scan, 4, 0).unwrap();
        let stream_of = |path: &str| {
            plan.streams
                .iter()
                .position(|units| units.iter().any(|unit| Path::new(path).starts_with(unit)))
                .unwrap()
        };
        assert_eq!(
            stream_of("data/new-file"),
            stream_of("new-dir/new-hardlink"),
            "{plan:?}"
        );
        assert_ne!(stream_of("x"), stream_of("y"), "{plan:?}");
    }

    #[test]
    fn a_tree_lighter_than_the_minimum_is_not_split() {
        let scan = scan_of(vec![file("a", 10 << 20), file("b", 10 << 20)]);
        assert_eq!(plan(&scan, 2, 64 << 20), None);
        assert!(plan(&scan, 2, 16 << 20).is_some());
    }

    #[test]
    fn everything_linked_together_is_one_stream_so_no_plan() {
        let scan = Scan {
            entries: vec![file("a", 1), file("b", 1)],
            hard_links: vec![paths(&["a", "b"])],
            ..Scan::default()
        };
        assert_eq!(plan(&scan, 2, 0), None);
    }

    #[test]
    fn lists_are_nul_separated_and_split_levels_end_in_a_dot() {
        assert_eq!(files_from_list(&paths(&["a b", "c/d"])), b"a b\0c/d\0");
        assert_eq!(split_dirs_list(&paths(&["", "pgdata"])), b"./\0pgdata/.\0");
    }

    #[test]
    fn scan_weighs_the_tree_and_finds_hard_links_and_skips_excluded_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("lost+found")).unwrap();
        std::fs::write(root.join("a/b/f"), vec![0u8; 1000]).unwrap();
        std::fs::write(root.join("top"), "xy").unwrap();
        std::fs::hard_link(root.join("a/b/f"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("top", root.join("sym")).unwrap();
        let scan = scan(root, &["lost+found"]).unwrap();
        let names: Vec<&Path> = scan.entries.iter().map(|n| n.path.as_path()).collect();
        assert_eq!(
            names,
            [
                Path::new("a"),
                Path::new("link"),
                Path::new("sym"),
                Path::new("top")
            ]
        );
        // root, a, a/b, a/b/f, link, sym, top
        assert_eq!(scan.entry_count, 7);
        assert_eq!(scan.total_size, 1000 + 1000 + 3 + 2);
        assert_eq!(scan.entries[0].weight, 3 * ENTRY_WEIGHT + 1000);
        assert_eq!(scan.hard_links, vec![paths(&["a/b/f", "link"])]);
        assert!(!scan.sparse, "dense files only: no --sparse");
        std::fs::File::create(root.join("holes"))
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        assert!(super::scan(root, &["lost+found"]).unwrap().sparse);
    }
}
