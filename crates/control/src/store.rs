//! Persistence of the control state. [`Store`] is the seam (the Redis-backed store for fleets
//! is [`crate::store_redis::RedisStore`]); [`FileStore`] is the default: one JSON document under `data_dir`, replaced
//! atomically (write temp file, fsync, rename, fsync the directory) so a kill -9 at any point
//! leaves either the old or the new state. The file is readable by its owner only (mode 0600):
//! it holds the endpoints' and interlays' passwords.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::State;
use crate::ControlError;

/// Where the control state lives.
pub trait Store: Send + Sync + 'static {
    /// Loads the last saved state; `None` when nothing was ever saved.
    fn load(&self) -> Result<Option<State>, ControlError>;
    /// Replaces the saved state; durable when it returns `Ok`. A shared store refuses a save
    /// based on an outdated version with [`ControlError::Conflict`].
    fn save(&self, state: &State) -> Result<(), ControlError>;
    /// The version (fleet epoch) of the state this store last loaded or saved; 0 for stores
    /// that only this process writes.
    fn version(&self) -> u64 {
        0
    }
    /// A state saved by another process since the last load or save, if any (and it becomes
    /// the base of the next save). Stores that only this process writes have none.
    fn load_newer(&self) -> Result<Option<State>, ControlError> {
        Ok(None)
    }
}

/// The default store: `<data_dir>/control-state.json`.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

/// The file name of the state document inside `data_dir`.
pub const STATE_FILE: &str = "control-state.json";

impl FileStore {
    /// A store in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<FileStore, ControlError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|e| ControlError::Store(format!("create {}: {e}", dir.display())))?;
        Ok(FileStore { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
}

/// Creates (or truncates) `path` readable by the owner only: the state holds the endpoints'
/// and interlays' passwords. A file left by an older version keeps its mode when truncated, so
/// it is removed first.
fn create_private(path: &Path) -> std::io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn io(what: &str, p: &Path, e: std::io::Error) -> ControlError {
    ControlError::Store(format!("{what} {}: {e}", p.display()))
}

impl Store for FileStore {
    fn load(&self) -> Result<Option<State>, ControlError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ControlError::Store(format!("parse {}: {e}", path.display())))
    }

    fn save(&self, state: &State) -> Result<(), ControlError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| ControlError::Store(format!("encode state: {e}")))?;
        {
            let mut f = create_private(&tmp).map_err(|e| io("create", &tmp, e))?;
            f.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
            f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, e))?;
        // The rename is durable only once the directory entry is.
        let d = File::open(&self.dir).map_err(|e| io("open", &self.dir, e))?;
        d.sync_all().map_err(|e| io("fsync", &self.dir, e))?;
        Ok(())
    }
}

/// An in-memory store, for tests and for running without a data dir.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Option<State>>,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Option<State>, ControlError> {
        Ok(self.state.lock().map_err(|_| poisoned())?.clone())
    }

    fn save(&self, state: &State) -> Result<(), ControlError> {
        *self.state.lock().map_err(|_| poisoned())? = Some(state.clone());
        Ok(())
    }
}

fn poisoned() -> ControlError {
    ControlError::Store("memory store lock poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OrgState;

    #[test]
    fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("sub")).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut st = State::default();
        st.orgs.insert("acme".into(), OrgState::default());
        store.save(&st).unwrap();
        store.save(&st).unwrap();
        let back = store.load().unwrap().unwrap();
        assert!(back.orgs.contains_key("acme"));
        assert!(!dir
            .path()
            .join("sub")
            .join("control-state.json.tmp")
            .exists());
    }

    /// The state holds backend and interlay passwords: only the owner may read it, even when
    /// an older version left a world-readable file or temp file behind.
    #[cfg(unix)]
    #[test]
    fn state_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for name in [STATE_FILE, "control-state.json.tmp"] {
            fs::write(dir.path().join(name), b"{}").unwrap();
            fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(0o644)).unwrap();
        }
        let store = FileStore::new(dir.path()).unwrap();
        store.save(&State::default()).unwrap();
        let mode = fs::metadata(dir.path().join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let store = FileStore::new(dir.path()).unwrap();
        assert!(matches!(store.load(), Err(ControlError::Store(_))));
    }
}
