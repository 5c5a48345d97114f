//! The demo's data: files the "database" writes into its 0700 data directory (owned by uid 999, as
//! the app's container runs), and the final comparison of the two volumes, contents, owner and mode
//! of every entry included.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

/// The app's uid and gid (`e2e/examples/shop`, `USER 999:999` of the app image).
const APP_ID: u32 = 999;

/// Writes `count` files `f<first>..` of `size` bytes (and a small journal entry) into the data
/// directory `dir`, as the app's user: the directory 0700, everything owned by 999:999.
pub(super) fn write_data(dir: &Path, first: usize, count: usize, size: usize) -> anyhow::Result<String> {
    let table = dir.join("base");
    std::fs::create_dir_all(&table)?;
    for made in [dir, &table] {
        std::os::unix::fs::chown(made, Some(APP_ID), Some(APP_ID))?;
        std::fs::set_permissions(made, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut bytes = 0;
    for i in first..first + count {
        let contents = format!("row {i}\n").repeat(size.max(64) / 8);
        let file = table.join(format!("f{i:05}"));
        std::fs::write(&file, &contents)?;
        std::os::unix::fs::chown(&file, Some(APP_ID), Some(APP_ID))?;
        bytes += contents.len();
    }
    let journal = dir.join("journal.log");
    let mut entries = std::fs::read_to_string(&journal).unwrap_or_default();
    entries.push_str(&format!("wrote rows {first}..{}\n", first + count));
    std::fs::write(&journal, entries)?;
    std::os::unix::fs::chown(&journal, Some(APP_ID), Some(APP_ID))?;
    Ok(format!(
        "{count} files, {}",
        ferry::pipeline::transfer::human_bytes(bytes as u64)
    ))
}

/// Puts `count` files of 100 bytes into `dir/many/dNNNN/fNNN` (folders of 1,000), owned by the
/// app's user: the large tree of `--files` (a database's many small files).
pub(super) fn write_many(dir: &Path, count: u64) -> anyhow::Result<String> {
    for index in 0..count {
        let folder = dir.join("many").join(format!("d{:04}", index / 1000));
        if index % 1000 == 0 {
            std::fs::create_dir_all(&folder)?;
            for made in [folder.parent().unwrap_or(dir), &folder] {
                std::os::unix::fs::chown(made, Some(APP_ID), Some(APP_ID))?;
            }
        }
        let file = folder.join(format!("f{:03}", index % 1000));
        std::fs::write(&file, many_contents(index, 0))?;
        std::os::unix::fs::chown(&file, Some(APP_ID), Some(APP_ID))?;
    }
    Ok(format!(
        "{count} files of 100 bytes in {} folders",
        count.div_ceil(1000)
    ))
}

/// Rewrites every 1,000th file of [`write_many`]'s tree (0.1%: same size, new bytes, new mtime).
pub(super) fn change_many(dir: &Path, count: u64, round: u64) -> anyhow::Result<String> {
    let mut changed = 0;
    for index in (0..count).step_by(1000) {
        let index = index + round % 1000;
        if index >= count {
            continue;
        }
        let file = dir
            .join("many")
            .join(format!("d{:04}", index / 1000))
            .join(format!("f{:03}", index % 1000));
        std::fs::write(&file, many_contents(index, round))?;
        changed += 1;
    }
    Ok(format!("{changed} of the {count} small files (0.1%)"))
}

/// 100 bytes naming the file and the round that wrote it.
fn many_contents(index: u64, round: u64) -> Vec<u8> {
    let mut text = format!("file {index} round {round} ").into_bytes();
    text.resize(100, b'.');
    text
}

/// One entry of a tree: owner, group, permission bits, and a file's contents (empty for a directory).
#[derive(PartialEq, Eq)]
pub(super) struct Entry {
    uid: u32,
    gid: u32,
    mode: u32,
    contents: Vec<u8>,
}

/// Paths whose contents, owner or mode differ between two trees (missing on either side included).
pub(super) fn compare_trees(a: &Path, b: &Path) -> anyhow::Result<Vec<String>> {
    let (left, right) = (list_tree(a)?, list_tree(b)?);
    let mut differ: Vec<String> = left
        .iter()
        .filter(|(path, entry)| right.get(*path) != Some(entry))
        .map(|(path, _)| path.clone())
        .collect();
    differ.extend(right.keys().filter(|p| !left.contains_key(*p)).cloned());
    Ok(differ)
}

/// Every entry under `root` (not `root` itself) by relative path.
pub(super) fn list_tree(root: &Path) -> anyhow::Result<BTreeMap<String, Entry>> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let relative = path.strip_prefix(root)?.to_string_lossy().into_owned();
            let contents = if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path)?
            };
            let (uid, gid, mode) = (meta.uid(), meta.gid(), meta.mode() & 0o7777);
            entries.insert(
                relative,
                Entry {
                    uid,
                    gid,
                    mode,
                    contents,
                },
            );
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_mode_is_a_difference() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for root in [a.path(), b.path()] {
            std::fs::create_dir(root.join("data")).unwrap();
            std::fs::write(root.join("data/f"), "x").unwrap();
        }
        assert!(compare_trees(a.path(), b.path()).unwrap().is_empty());
        std::fs::set_permissions(b.path().join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(compare_trees(a.path(), b.path()).unwrap(), ["data"]);
    }
}
