//! Atomic output files: what a tool writes goes to a temporary file beside the target, renamed
//! over it only when complete, so the target is never half-written and no temporary file is
//! left behind.
//!
//! Keeps the one guard the tools that write files share ([`AtomicFile`]): the temporary file
//! is made by the `tempfile` crate in the target's directory (a rename never crosses file
//! systems) with the mode the tool asks for (the umask applies, as to any file created), and
//! removed when the guard is dropped before [`AtomicFile::persist`], or, when asked, when the
//! process is stopped by SIGINT, SIGTERM or SIGHUP (the process then dies of the signal, so the
//! shell sees the status it would have seen). Must not decide whether an existing target may
//! be replaced: that is each tool's rule, checked before [`AtomicFile::persist`].

use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tempfile::TempPath;
use thiserror::Error;

/// Why an atomic output file could not be made or put in place.
#[derive(Debug, Error)]
pub enum OutputError {
    /// The target has no file name (`-w /`, `-w dir/..`).
    #[error("{}: not a file name", .target.display())]
    NotAFileName {
        /// The target as given.
        target: PathBuf,
    },
    /// The stopping signals could not be held, or their thread not started.
    #[error("cannot {what}: {source}")]
    Signals {
        /// What failed.
        what: &'static str,
        /// The error of the system.
        #[source]
        source: io::Error,
    },
    /// The temporary file could not be created.
    #[error("cannot create a temporary file in '{}': {source}", .dir.display())]
    Create {
        /// The directory it was to be created in.
        dir: PathBuf,
        /// The error of the system.
        #[source]
        source: io::Error,
    },
    /// A stopping signal removed the temporary file before it was renamed.
    #[error("stopped before the output was complete")]
    Stopped,
    /// The temporary file could not be renamed over the target.
    #[error("cannot rename '{}' to '{}': {source}", .temp.display(), .target.display())]
    Rename {
        /// The temporary file (removed since).
        temp: PathBuf,
        /// The target.
        target: PathBuf,
        /// The error of the system.
        #[source]
        source: io::Error,
    },
}

/// The temporary file while it is neither renamed nor removed: shared with the thread that
/// waits for the stopping signals, so that whichever comes first (rename or signal) wins.
type Slot = Arc<Mutex<Option<TempPath>>>;

fn lock(slot: &Slot) -> MutexGuard<'_, Option<TempPath>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A temporary file beside its target, renamed over it by [`AtomicFile::persist`] and removed
/// if dropped before.
#[derive(Debug)]
pub struct AtomicFile {
    temp: Slot,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file for `target` with `mode` (before the umask), in the target's
    /// directory and named after it (`.NAME.XXXXXX.tmp`, hidden). With `remove_on_signal`,
    /// SIGINT, SIGTERM and SIGHUP are held by the calling thread and taken by a thread of their
    /// own, which removes the temporary file, then dies of the signal.
    pub fn create(
        target: &Path,
        mode: u32,
        remove_on_signal: bool,
    ) -> Result<(AtomicFile, File), OutputError> {
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .ok_or_else(|| OutputError::NotAFileName {
                target: target.to_path_buf(),
            })?;
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let slot: Slot = Arc::new(Mutex::new(None));
        if remove_on_signal {
            remove_on_stopping_signals(slot.clone())?;
        }
        // Held while the file is created: a signal taken meanwhile finds the file in the slot.
        let mut held = lock(&slot);
        let (file, path) = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir)
            .map_err(|source| OutputError::Create {
                dir: dir.to_path_buf(),
                source,
            })?
            .into_parts();
        *held = Some(path);
        drop(held);
        Ok((
            AtomicFile {
                temp: slot,
                target: target.to_path_buf(),
            },
            file,
        ))
    }

    /// The target.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the temporary file over the target (replacing what is there). On failure the
    /// temporary file is removed.
    pub fn persist(self) -> Result<(), OutputError> {
        let mut held = lock(&self.temp);
        let temp = held.take().ok_or(OutputError::Stopped)?;
        temp.persist(&self.target).map_err(|e| OutputError::Rename {
            temp: e.path.to_path_buf(),
            target: self.target.clone(),
            source: e.error,
        })
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Dropping the path removes the file.
        drop(lock(&self.temp).take());
    }
}

/// The signals that stop a run and must not leave the temporary file behind.
fn stopping_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set
}

/// Holds the stopping signals for this thread and hands them to a thread that removes the
/// temporary file, then dies of the signal as it would have (the shell sees the same status).
fn remove_on_stopping_signals(slot: Slot) -> Result<(), OutputError> {
    let set = stopping_signals();
    set.thread_block().map_err(|e| OutputError::Signals {
        what: "hold signals while writing",
        source: io::Error::from(e),
    })?;
    std::thread::Builder::new()
        .name("output-signals".into())
        .spawn(move || {
            let Ok(signal) = set.wait() else { return };
            drop(lock(&slot).take());
            // The stopping signals keep their default action (die) unless ignored, and an
            // ignored signal never reaches `wait`: raised again here, it ends the process.
            let _ = set.thread_unblock();
            let _ = nix::sys::signal::raise(signal);
            std::process::exit(128 + signal as i32);
        })
        .map_err(|source| OutputError::Signals {
            what: "start the signal thread",
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bpftools-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_target_appears_whole_with_its_mode_or_not_at_all() {
        let dir = temp_dir("persist");
        let target = dir.join("out.sh");
        std::fs::write(&target, b"old").unwrap();
        let (guard, mut file) = AtomicFile::create(&target, 0o750, false).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"old",
            "not before persist"
        );
        assert_eq!(entries(&dir).len(), 2);
        guard.persist().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o700, 0o700, "{mode:o}");
        assert_eq!(mode & 0o007, 0, "{mode:o}");
        assert_eq!(entries(&dir), ["out.sh"]);

        let (guard, mut file) = AtomicFile::create(&target, 0o666, false).unwrap();
        file.write_all(b"half").unwrap();
        drop(guard);
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(entries(&dir), ["out.sh"], "no temporary file left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_are_typed_and_leave_nothing() {
        let dir = temp_dir("fail");
        assert!(matches!(
            AtomicFile::create(&dir.join("missing").join("x"), 0o666, false),
            Err(OutputError::Create { .. })
        ));
        assert!(matches!(
            AtomicFile::create(Path::new("/"), 0o666, false),
            Err(OutputError::NotAFileName { .. })
        ));
        // A directory in the target's place: the rename fails, the temporary file goes.
        let target = dir.join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"").unwrap();
        let (guard, _file) = AtomicFile::create(&target, 0o666, false).unwrap();
        assert!(matches!(guard.persist(), Err(OutputError::Rename { .. })));
        assert_eq!(entries(&dir), ["taken"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
