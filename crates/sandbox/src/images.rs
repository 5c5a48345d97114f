//! The container images of a sandbox with real nodes, built by `e2e/images/build.sh` (no Docker, no
//! registry) and cached by content under `~/.cache/ferry/images` (`$FERRY_IMAGE_CACHE`), so each
//! sandbox imports tars instead of rebuilding a 100 MB image: ferry (from the test build's binary, named
//! [`ferry::pipeline::movers::DEFAULT_IMAGE`], the image mover pods use when a plan names none), pause
//! (the pod sandbox) and the example app's busybox image (`USER 999:999`). Hook images, which tests
//! "push" to one cluster (`Sandbox::install_image`), are built per sandbox.

use std::fs::File;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::node::PAUSE_IMAGE;
use crate::{Error, Result};

/// The example app's image (busybox-static, `USER 999:999`): `e2e/examples/shop/*.yaml` run it.
pub const APP_IMAGE: &str = "localhost/ferry-sandbox/app:1";

/// The image tars a real node of the sandbox imports: ferry (from `ferry_binary`), pause, app.
pub fn sandbox_images(ferry_binary: &Path) -> Result<Vec<PathBuf>> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(Error::io(format!("creating {}", cache.display())))?;
    let binary = ferry_binary
        .canonicalize()
        .map_err(Error::io(format!("resolving {}", ferry_binary.display())))?;
    let meta = std::fs::metadata(&binary).map_err(Error::io(format!("reading {}", binary.display())))?;
    // A rebuilt binary has another size or mtime; hashing 100+ MB for every sandbox would cost seconds.
    let ferry_inputs = format!(
        "{} {} {}.{}",
        binary.display(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let dockerfile = repo_file("Dockerfile")?;
    let pause_source = repo_file("e2e/images/pause/main.go")?;
    let busybox = std::fs::metadata("/bin/busybox")
        .map(|m| format!("{} {}", m.size(), m.mtime()))
        .unwrap_or_default();
    let ferry_name = ferry::pipeline::movers::DEFAULT_IMAGE;
    let images = [
        ("ferry", ferry_name, vec![ferry_inputs, dockerfile]),
        ("pause", PAUSE_IMAGE, vec![pause_source]),
        ("app", APP_IMAGE, vec![busybox]),
    ];
    let checkout = repo_root()
        .canonicalize()
        .map_err(Error::io("resolving the repository root"))?
        .display()
        .to_string();
    let script = build_script();
    let script_text =
        std::fs::read_to_string(&script).map_err(Error::io(format!("reading {}", script.display())))?;
    let mut tars = Vec::new();
    for (kind, name, inputs) in images {
        let key = key(&[&script_text, name]
            .into_iter()
            .map(String::from)
            .chain(inputs)
            .collect::<Vec<_>>());
        // A ferry tar per binary path, the others per checkout: another worktree's sandbox, whose
        // build.sh may differ, may be importing its own right now (removing "older" tars of a family
        // shared across worktrees deleted one between its build and its import).
        let family = match kind {
            "ferry" => format!("ferry-{}", key_of(&binary.display().to_string())),
            other => format!("{other}-{}", key_of(&checkout)),
        };
        let tar = cache.join(format!("{family}-{key}.tar"));
        ensure_built(&cache, kind, name, &family, &tar, &binary)?;
        tars.push(tar);
    }
    Ok(tars)
}

/// Builds hook image `name` into `tar`: busybox-static with `script` as its entrypoint (`build.sh hook`),
/// a MigHook's custom image. Not cached: a few MB, built in about a second.
pub(crate) fn build_hook(tar: &Path, name: &str, script: &Path) -> Result<()> {
    build(
        Command::new(build_script())
            .arg("hook")
            .arg(tar)
            .arg(name)
            .arg(script),
        "hook",
    )
}

/// Runs `build.sh` as `command` says; an error quotes its stderr.
fn build(command: &mut Command, kind: &str) -> Result<()> {
    let output = command
        .output()
        .map_err(Error::io("running e2e/images/build.sh"))?;
    if !output.status.success() {
        return Err(Error::Sandbox(format!(
            "e2e/images/build.sh {kind} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Builds `tar` unless another sandbox (this process or another) already did; one build at a time per
/// cache directory, older tars of the same `family` removed.
fn ensure_built(
    cache: &Path,
    kind: &str,
    name: &str,
    family: &str,
    tar: &Path,
    ferry_binary: &Path,
) -> Result<()> {
    let lock_path = cache.join(".lock");
    let lock = File::create(&lock_path).map_err(Error::io(format!("creating {}", lock_path.display())))?;
    lock.lock()
        .map_err(Error::io(format!("locking {}", lock_path.display())))?;
    if tar.is_file() {
        return Ok(());
    }
    let started = Instant::now();
    let mut command = Command::new(build_script());
    command.arg(kind);
    if kind == "ferry" {
        command.arg(ferry_binary);
    }
    build(command.arg(tar).arg(name), kind)?;
    tracing::info!(
        image = name,
        seconds = started.elapsed().as_secs_f64(),
        "built image"
    );
    let prefix = format!("{family}-");
    for entry in std::fs::read_dir(cache).map_err(Error::io(format!("listing {}", cache.display())))? {
        let path = entry.map_err(Error::io("listing the image cache"))?.path();
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let older = file
            .strip_prefix(&prefix)
            .is_some_and(|k| k.len() == 20 && k.ends_with(".tar"));
        if older && path != tar {
            std::fs::remove_file(&path).ok();
        }
    }
    Ok(())
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_IMAGE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/ferry/images")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_script() -> PathBuf {
    repo_root().join("e2e/images/build.sh")
}

fn repo_file(path: &str) -> Result<String> {
    let path = repo_root().join(path);
    std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))
}

/// A short hex key of `parts` (a cache key only: not a content address).
fn key(parts: &[String]) -> String {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn key_of(text: &str) -> String {
    key(&[text.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_any_input() {
        let a = key(&["script".into(), "ferry 1 2.3".into()]);
        assert_eq!(a, key(&["script".into(), "ferry 1 2.3".into()]));
        assert_ne!(a, key(&["script".into(), "ferry 1 2.4".into()]));
        assert_eq!(a.len(), 16);
    }
}
