//! The files a sender could not read, from rsync's stderr: a restricted (non-root) sender meets a
//! database's 0700 tree, rsync skips what it cannot open, goes on, and exits 23. That must never pass
//! as a copy, nor fail with only "some files were not transferred": the failure names the files
//! (the first [`MAX_NAMED`], then how many more), relative to the volume root.
//!
//! The lines parsed (rsync 3.2; older versions lack the `[sender]` tag):
//! ```text
//! rsync: [sender] send_files failed to open "/data/db/base/1": Permission denied (13)
//! rsync: [sender] opendir "/data/db" failed: Permission denied (13)
//! rsync: [sender] readlink_stat("/data/x") failed: Permission denied (13)
//! ```

/// Names kept for the message; the rest are counted.
pub(crate) const MAX_NAMED: usize = 10;

/// What could not be read, bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Unreadable {
    /// The first [`MAX_NAMED`] paths, in rsync's order.
    pub named: Vec<String>,
    /// How many in all.
    pub count: usize,
}

impl Unreadable {
    /// Records `line` when it reports an unreadable path (`source` is stripped from it).
    pub(crate) fn absorb(&mut self, line: &str, source: &str) {
        if let Some(path) = parse(line) {
            self.record(relative(path, source));
        }
    }

    fn record(&mut self, path: String) {
        self.count += 1;
        if self.named.len() < MAX_NAMED {
            self.named.push(path);
        }
    }

    /// Adds another run's findings (the streams of a parallel send).
    pub(crate) fn merge(&mut self, other: &Unreadable) {
        let extra = other.count - other.named.len();
        for path in &other.named {
            self.record(path.clone());
        }
        self.count += extra;
    }

    /// Whether nothing was reported.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// One line: `2 file(s) could not be read (permission denied): db/a, db/b`, with `and N more` past
    /// the named ones, and what to do.
    pub(crate) fn message(&self) -> String {
        let mut names = self.named.join(", ");
        if self.count > self.named.len() {
            names.push_str(&format!(" and {} more", self.count - self.named.len()));
        }
        format!(
            "{} file(s) could not be read (permission denied), so the copy is incomplete: {names}; run the \
             movers as root (runAsRoot: true, the default) or give their user access",
            self.count
        )
    }
}

/// The path an unreadable-file line names, as rsync quoted it.
fn parse(line: &str) -> Option<&str> {
    if !line.contains("Permission denied") {
        return None;
    }
    let rest = line.strip_prefix("rsync: ")?;
    let rest = rest.strip_prefix("[sender] ").unwrap_or(rest);
    let quoted = |after: &str| {
        let start = rest.strip_prefix(after)?;
        let end = start.find('"')?;
        Some(&start[..end])
    };
    quoted("send_files failed to open \"")
        .or_else(|| quoted("opendir \""))
        .or_else(|| quoted("readlink_stat(\""))
        .or_else(|| quoted("link_stat \""))
}

fn relative(path: &str, source: &str) -> String {
    let source = source.trim_end_matches('/');
    let stripped = path
        .strip_prefix(source)
        .filter(|rest| !source.is_empty() && (rest.is_empty() || rest.starts_with('/')))
        .map_or(path, |rest| rest.trim_start_matches('/'));
    if stripped.is_empty() {
        ".".into()
    } else {
        stripped.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsyncs_permission_lines_name_the_paths_relative_to_the_root() {
        let mut found = Unreadable::default();
        for line in [
            r#"rsync: [sender] send_files failed to open "/data/db/base/1": Permission denied (13)"#,
            r#"rsync: [sender] opendir "/data/db/secret" failed: Permission denied (13)"#,
            r#"rsync: opendir "/data/old" failed: Permission denied (13)"#,
            r#"rsync: [sender] readlink_stat("/data/x y") failed: Permission denied (13)"#,
            r#"rsync: [sender] send_files failed to open "/data/gone": No such file or directory (2)"#,
            "rsync error: some files/attrs were not transferred (see previous errors) (code 23)",
            r#"rsync: [sender] opendir "/database" failed: Permission denied (13)"#,
        ] {
            found.absorb(line, "/data/");
        }
        assert_eq!(
            found.named,
            ["db/base/1", "db/secret", "old", "x y", "/database"],
            "a sibling sharing the prefix keeps its path"
        );
        assert_eq!(found.count, 5);
        let message = found.message();
        assert!(
            message.starts_with("5 file(s) could not be read") && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn the_list_is_bounded_and_counts_the_rest_across_streams() {
        let mut a = Unreadable::default();
        for i in 0..15 {
            a.absorb(
                &format!(r#"rsync: [sender] send_files failed to open "/data/f{i}": Permission denied (13)"#),
                "/data",
            );
        }
        assert_eq!((a.named.len(), a.count), (MAX_NAMED, 15));
        assert!(a.message().contains("f9 and 5 more"), "{}", a.message());
        let mut total = Unreadable::default();
        total.merge(&a);
        total.merge(&a);
        assert_eq!((total.named.len(), total.count), (MAX_NAMED, 30));
        assert!(Unreadable::default().is_empty());
    }
}
