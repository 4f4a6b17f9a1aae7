//! Which file serves a route, and reading and writing files safely.
//!
//! A route's `component` is a path, relative to the config file, that may
//! hold glob wildcards (`*`, `?`, `[...]`). **When several files match, the
//! one modified last serves** (ties go to the path that sorts first). That
//! one rule lets every way of building the guests serve without an edit:
//! the default `webapp.toml` names `target/wasm32-wasip*/*/ep_one.wasm`,
//! which matches the outputs of `cargo component build` (wasm32-wasip1) and
//! of `cargo build --target wasm32-wasip2`, debug and release; whichever
//! build ran last is the one served, and the host logs which it picked.
//!
//! Writing is durable: [`write_durably`] leaves the old or the new
//! content, never a torn file.
//!
//! Reading is bounded: only regular files no larger than a cap are read
//! (checked before and while reading), so naming `/dev/zero`, a FIFO or a
//! huge file is an error, never an endless read.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// The largest component file the host reads (uploads have the same cap).
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The file a route's pattern resolves to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The file that serves: the most recently modified match.
    pub file: PathBuf,
    /// The other matches, older (or equally old and sorting later).
    pub others: Vec<PathBuf>,
}

/// Whether `pattern` holds glob wildcards (else it names one file).
pub fn is_pattern(pattern: &Path) -> bool {
    pattern.to_string_lossy().contains(['*', '?', '['])
}

/// The file `pattern` names now: the newest regular file matching it.
pub fn resolve(pattern: &Path) -> Result<Resolved, String> {
    let text = pattern.to_string_lossy();
    let matches = glob::glob(&text).map_err(|e| format!("`{text}` is not a valid pattern: {e}"))?;
    let candidates: Vec<(PathBuf, SystemTime)> = matches
        .filter_map(Result::ok)
        .filter_map(|path| {
            let meta = std::fs::metadata(&path).ok()?;
            meta.is_file()
                .then(|| (path, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
        })
        .collect();
    newest(candidates).ok_or_else(|| {
        if is_pattern(pattern) {
            format!("no file matches `{text}`")
        } else {
            format!("component file `{text}` does not exist")
        }
    })
}

/// The rule itself, free of I/O: the latest modification time wins; among
/// equals, the path that sorts first.
pub fn newest(mut candidates: Vec<(PathBuf, SystemTime)>) -> Option<Resolved> {
    candidates.sort_by(|(a, at), (b, bt)| bt.cmp(at).then_with(|| a.cmp(b)));
    let mut files = candidates.into_iter().map(|(path, _)| path);
    let file = files.next()?;
    Some(Resolved {
        file,
        others: files.collect(),
    })
}

/// The folders to watch so that a new or rebuilt match of `pattern` is
/// noticed: its own folder for a plain path; for a pattern, the folder
/// above its first wildcard and every existing folder that matches deeper
/// (so a build folder that appears later, such as `target/wasm32-wasip1/`,
/// is seen appearing and then watched). A folder that does not exist yet
/// is stood in for by its nearest existing ancestor.
pub fn folders_to_watch(pattern: &Path) -> Vec<PathBuf> {
    let Some(parent) = pattern.parent() else {
        return Vec::new();
    };
    let parts: Vec<Component> = parent.components().collect();
    let first_wild = parts
        .iter()
        .position(|c| is_pattern(Path::new(c.as_os_str())))
        .unwrap_or(parts.len());
    let literal: PathBuf = parts[..first_wild].iter().collect();
    // A relative path's last ancestor is "": the working folder.
    let mut folders: Vec<PathBuf> = literal
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    for depth in first_wild + 1..=parts.len() {
        let prefix: PathBuf = parts[..depth].iter().collect();
        let Ok(matches) = glob::glob(&prefix.to_string_lossy()) else {
            continue;
        };
        folders.extend(matches.filter_map(Result::ok).filter(|p| p.is_dir()));
    }
    folders
}

/// A core WebAssembly module (not a component): what `cargo component
/// build` writes for a moment before it converts the file in place.
pub fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x01\0\0\0")
}

/// Reads a component file: a regular file of at most `max` bytes, checked
/// before reading (type, size) and while reading (a file growing meanwhile).
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    read_bounded(path, max, "a component")
}

/// Reads `what` from `path` (the config file too): a regular file of at
/// most `max` bytes, checked as [`read`] says. Never waits on a FIFO or
/// reads an endless file.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, String> {
    let shown = path.display();
    // Checked before opening: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{shown}` is not a regular file"));
    }
    // Non-blocking, in case it was replaced by a FIFO since.
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open `{shown}`: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{shown}` is not a regular file"));
    }
    if meta.len() > max {
        return Err(format!(
            "`{shown}` is {} bytes, larger than the {max}-byte limit for {what}",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "`{shown}` grew past the {max}-byte limit for {what} while being read"
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new
/// content: a synced temporary file renamed into place, then the folder
/// synced (the rename itself is durable only then).
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_newest_match_serves_and_ties_go_to_the_first_path() {
        let r = newest(vec![
            ("a/debug/x.wasm".into(), at(10)),
            ("b/release/x.wasm".into(), at(30)),
            ("a/release/x.wasm".into(), at(20)),
        ])
        .unwrap();
        assert_eq!(r.file, Path::new("b/release/x.wasm"));
        assert_eq!(
            r.others,
            [Path::new("a/release/x.wasm"), Path::new("a/debug/x.wasm")]
        );
        let tie = newest(vec![("z".into(), at(5)), ("y".into(), at(5))]).unwrap();
        assert_eq!(tie.file, Path::new("y"));
        assert_eq!(newest(vec![]), None);
    }

    #[test]
    fn patterns_resolve_to_the_latest_file_written() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("target/wasm32-wasip*/*/x.wasm");
        let e = resolve(&pattern).unwrap_err();
        assert!(e.contains("no file matches"), "{e}");
        // No `target/` yet: its parent is watched for it to appear.
        assert_eq!(folders_to_watch(&pattern), [dir.path()]);
        std::fs::create_dir(dir.path().join("target")).unwrap();
        assert_eq!(folders_to_watch(&pattern), [dir.path().join("target")]);

        let older = dir.path().join("target/wasm32-wasip2/release/x.wasm");
        let newer = dir.path().join("target/wasm32-wasip1/debug/x.wasm");
        for (file, secs) in [(&older, 100), (&newer, 200)] {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, b"x").unwrap();
            std::fs::File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_modified(at(secs))
                .unwrap();
        }
        // A folder with the file's name is not a match.
        std::fs::create_dir_all(dir.path().join("target/wasm32-wasip2/x.wasm")).unwrap();
        let r = resolve(&pattern).unwrap();
        assert_eq!((r.file, r.others), (newer.clone(), vec![older.clone()]));

        let mut watched = folders_to_watch(&pattern);
        watched.sort();
        let t = dir.path().join("target");
        assert_eq!(
            watched,
            [
                t.clone(),
                t.join("wasm32-wasip1"),
                t.join("wasm32-wasip1/debug"),
                t.join("wasm32-wasip2"),
                t.join("wasm32-wasip2/release"),
                t.join("wasm32-wasip2/x.wasm"),
            ]
        );
        assert_eq!(folders_to_watch(&older), [older.parent().unwrap()]);
        let e = resolve(&dir.path().join("missing.wasm")).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn reading_refuses_what_is_not_a_bounded_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read(dir.path(), 1024).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = read(&fifo, 1024).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(2048).unwrap();
        let e = read(&big, 1024).unwrap_err();
        assert!(
            e.contains("2048 bytes, larger than the 1024-byte limit"),
            "{e}"
        );
        assert_eq!(read(&big, 2048).unwrap().len(), 2048);
        assert!(is_core_module(b"\0asm\x01\0\0\0rest"));
        assert!(!is_core_module(b"\0asm\x0d\0\x01\0rest"));
    }
}
