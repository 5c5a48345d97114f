//! A mover's private scratch folder under `TMPDIR` (in a pod: the scratch emptyDir at /tmp, the only
//! writable path besides the volume): a sender's `--files-from` lists and manifests (the receiver
//! keeps its rsyncd config off disk altogether, see `receive`). Mode 0700, named by pid and a random suffix, and removed when dropped, so every exit
//! that unwinds (success, error, a handled SIGTERM or SIGINT) leaves nothing behind; only SIGKILL can,
//! and in a pod the emptyDir goes with it.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The folder; removed with everything in it on drop.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `$TMPDIR/<prefix>-<pid>-<random>` (mode 0700).
    pub(crate) fn create(prefix: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(Error::io(format!("creating {}", dir.display())))?;
        Ok(Self(dir))
    }

    /// The folder's path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` in the folder and returns its path.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, contents).map_err(Error::io(format!("writing {}", path.display())))?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_private_and_gone_when_dropped() {
        use std::os::unix::fs::PermissionsExt as _;
        let scratch = ScratchDir::create("ferry-test").unwrap();
        let file = scratch.write("a.conf", b"x").unwrap();
        let mode = std::fs::metadata(scratch.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let dir = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!file.exists() && !dir.exists());
    }
}
