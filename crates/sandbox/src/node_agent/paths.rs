//! Pure string work for running a container's command on this machine: Kubernetes `$(VAR)` expansion,
//! and rewriting container paths (volume mount paths, the termination-message path) to the local
//! directories and files that stand in for them.
//!
//! The rule (also in docs/sandbox.md): an occurrence of a mapped container path is replaced when it
//! starts at the beginning of the string or after a character that cannot be part of a path
//! (anything but letters, digits, `.`, `_`, `-`, `~`, `/`), and ends at the end of the string, at a
//! `/`, or before such a character. Longer container paths win, so `/data/cache` beats `/data`.

use std::path::{Path, PathBuf};

/// Container paths and the local paths that stand in for them, longest container path first.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathMap {
    entries: Vec<(String, PathBuf)>,
}

impl PathMap {
    /// Maps `container_path` (absolute; a trailing `/` is ignored) to `local`. A later mapping of the
    /// same container path replaces the earlier one, as a later volume mount shadows an earlier one.
    pub(crate) fn insert(&mut self, container_path: &str, local: &Path) {
        let trimmed = container_path.trim_end_matches('/');
        let key = if trimmed.is_empty() { "/" } else { trimmed }.to_string();
        self.entries.retain(|(existing, _)| *existing != key);
        self.entries.push((key, local.to_path_buf()));
        self.entries
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    }

    /// The mappings, longest container path first.
    pub(crate) fn entries(&self) -> &[(String, PathBuf)] {
        &self.entries
    }

    /// `text` with every mapped container path (at a path boundary) replaced by its local path.
    pub(crate) fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut previous: Option<char> = None;
        let mut index = 0;
        while index < text.len() {
            let rest = &text[index..];
            let at_start = previous.is_none_or(|c| !is_path_char(c));
            if at_start && rest.starts_with('/') {
                let found = self.entries.iter().find(|(container, _)| {
                    rest.starts_with(container.as_str())
                        && rest[container.len()..]
                            .chars()
                            .next()
                            .is_none_or(|next| next == '/' || !is_path_char(next))
                });
                if let Some((container, local)) = found {
                    out.push_str(&local.to_string_lossy());
                    index += container.len();
                    previous = container.chars().last();
                    continue;
                }
            }
            let c = rest.chars().next().expect("index is on a char boundary");
            out.push(c);
            previous = Some(c);
            index += c.len_utf8();
        }
        out
    }
}

/// Characters that can continue a path name, so a mapped path must not be glued to them.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '/')
}

/// Kubernetes' `$(VAR)` expansion (as in command, args, env values and `subPathExpr`): `$(NAME)` becomes
/// the variable's value when `lookup` knows it and stays as written otherwise; `$$` is an escaped `$`.
pub(crate) fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(close) = inner.find(')')
        {
            let name = &inner[..close];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The last `max_lines` lines of `text`, at most `max_bytes` bytes (cut at a char boundary).
pub(crate) fn tail(text: &str, max_lines: usize, max_bytes: usize) -> String {
    let trimmed = text.trim_end_matches('\n');
    let start = trimmed
        .rmatch_indices('\n')
        .nth(max_lines.saturating_sub(1))
        .map_or(0, |(at, _)| at + 1);
    let mut lines = &trimmed[start..];
    if lines.len() > max_bytes {
        let mut cut = lines.len() - max_bytes;
        while !lines.is_char_boundary(cut) {
            cut += 1;
        }
        lines = &lines[cut..];
    }
    lines.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PathMap {
        let mut map = PathMap::default();
        map.insert("/data", Path::new("/tmp/w/pvc-a"));
        map.insert("/data/cache/", Path::new("/tmp/w/cache"));
        map.insert("/dev/termination-log", Path::new("/tmp/w/term/main"));
        map
    }

    #[test]
    fn longest_container_path_wins() {
        assert_eq!(map().rewrite("/data/cache/x"), "/tmp/w/cache/x");
        assert_eq!(map().rewrite("/data/cachex"), "/tmp/w/pvc-a/cachex");
        assert_eq!(map().entries()[0].0, "/dev/termination-log");
    }

    #[test]
    fn rewrites_only_at_path_boundaries() {
        let map = map();
        assert_eq!(map.rewrite("/data"), "/tmp/w/pvc-a");
        assert_eq!(map.rewrite("/data/"), "/tmp/w/pvc-a/");
        assert_eq!(map.rewrite("--root=/data/sub"), "--root=/tmp/w/pvc-a/sub");
        assert_eq!(
            map.rewrite("cp /data/a /data/b; echo ok > /dev/termination-log"),
            "cp /tmp/w/pvc-a/a /tmp/w/pvc-a/b; echo ok > /tmp/w/term/main"
        );
        assert_eq!(map.rewrite("'/data'"), "'/tmp/w/pvc-a'");
        assert_eq!(map.rewrite("/database"), "/database");
        assert_eq!(map.rewrite("/data.txt"), "/data.txt");
        assert_eq!(map.rewrite("/srv/data/x"), "/srv/data/x");
        assert_eq!(map.rewrite("rel/data"), "rel/data");
        assert_eq!(map.rewrite("héllo /data"), "héllo /tmp/w/pvc-a");
    }

    #[test]
    fn replaced_text_is_not_rewritten_again() {
        let mut map = PathMap::default();
        map.insert("/a", Path::new("/a/b"));
        map.insert("/a/b", Path::new("/zzz"));
        assert_eq!(map.rewrite("/a /a/b"), "/a/b /zzz");
    }

    #[test]
    fn later_mount_of_the_same_path_replaces_the_earlier() {
        let mut map = PathMap::default();
        map.insert("/data", Path::new("/one"));
        map.insert("/data/", Path::new("/two"));
        assert_eq!(map.entries().len(), 1);
        assert_eq!(map.rewrite("/data"), "/two");
    }

    #[test]
    fn expands_like_kubernetes() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)/$(A)", lookup), "x/x");
        assert_eq!(expand("$(B) stays", lookup), "$(B) stays");
        assert_eq!(expand("$$(A) escaped, $$ too", lookup), "$(A) escaped, $ too");
        assert_eq!(expand("lone $ and $(unclosed", lookup), "lone $ and $(unclosed");
        assert_eq!(expand("end$", lookup), "end$");
    }

    #[test]
    fn tail_keeps_the_last_lines_within_a_byte_budget() {
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("a\nb\nc", 5, 100), "a\nb\nc");
        assert_eq!(tail("", 5, 100), "");
        assert_eq!(tail("abcdef", 5, 3), "def");
        assert_eq!(tail("ééé", 5, 3), "é");
    }
}
