//! The two files the plugin re-reads without a broker restart: the key set and the revocation
//! list. Only local file reads (`stat`, and a read when the file changed), never network IO, so
//! the broker's single thread is never blocked for long.
//!
//! A file counts as changed when its size, modification time (nanoseconds) or inode differ
//! from the last read: a writer replacing it atomically (write a temporary file, rename it over)
//! always changes the inode.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use signin::{KeySet, Revocations};

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
    ino: u64,
    dev: u64,
}

/// What [`Watched::poll`] found.
#[derive(Debug)]
pub enum Poll {
    /// Same file as last time (or still missing).
    Unchanged,
    /// New contents.
    Changed(String),
    /// The file is gone (or cannot be read), newly so.
    Missing(String),
}

/// A file read again when it changes.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    /// `None` before the first poll; `Some(None)` while missing.
    stamp: Option<Option<Stamp>>,
}

impl Watched {
    /// A file not read yet.
    pub fn new(path: PathBuf) -> Self {
        Self { path, stamp: None }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file (one `stat`) and reads it when it changed since the last poll.
    pub fn poll(&mut self) -> Poll {
        let stamp = std::fs::metadata(&self.path).map(|m| Stamp {
            len: m.len(),
            mtime_s: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ino: m.ino(),
            dev: m.dev(),
        });
        match stamp {
            Err(e) => {
                if self.stamp == Some(None) {
                    return Poll::Unchanged;
                }
                self.stamp = Some(None);
                Poll::Missing(e.to_string())
            }
            Ok(s) if self.stamp == Some(Some(s)) => Poll::Unchanged,
            Ok(s) => match std::fs::read_to_string(&self.path) {
                Ok(text) => {
                    self.stamp = Some(Some(s));
                    Poll::Changed(text)
                }
                Err(e) => {
                    self.stamp = Some(None);
                    Poll::Missing(e.to_string())
                }
            },
        }
    }
}

/// A message for the broker's log, with its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Informational (a file loaded).
    Info(String),
    /// A warning (no revocations file yet).
    Warning(String),
    /// An error (classroom sign-in impossible, or a malformed revocation list ignored).
    Error(String),
}

/// The key set file (`plugin_opt_keys_file`): the key set JSON of `signin::KeySet`. Missing or
/// malformed, no key set is in force and every classroom CONNECT is refused.
#[derive(Debug)]
pub struct KeysFile {
    file: Watched,
    keys: Option<KeySet>,
}

impl KeysFile {
    /// Not read yet (call [`KeysFile::refresh`]).
    pub fn new(path: PathBuf) -> Self {
        Self {
            file: Watched::new(path),
            keys: None,
        }
    }

    /// The key set in force, if any.
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }

    /// Re-reads the file if it changed; a note for the log when something did.
    pub fn refresh(&mut self) -> Option<Note> {
        let path = self.file.path().display().to_string();
        match self.file.poll() {
            Poll::Unchanged => None,
            Poll::Missing(e) => {
                self.keys = None;
                Some(Note::Error(format!(
                    "keys file {path} cannot be read ({e}): every classroom CONNECT is refused \
                     until it is back"
                )))
            }
            Poll::Changed(text) => match KeySet::from_json(&text) {
                Ok(keys) => {
                    let kids: Vec<&str> = keys.kids().collect();
                    let note = Note::Info(format!(
                        "keys from {path}: current {:?}, accepted {kids:?}",
                        keys.current_kid()
                    ));
                    self.keys = Some(keys);
                    Some(note)
                }
                Err(e) => {
                    self.keys = None;
                    Some(Note::Error(format!(
                        "keys file {path} is not a valid key set ({e}): every classroom \
                         CONNECT is refused until it is fixed"
                    )))
                }
            },
        }
    }
}

/// The revocation file (`plugin_opt_revocations_file`): the JSON of `signin::Revocations`.
/// Missing, nothing is revoked (the local API writes it at its first poll); malformed, the last
/// good list stays in force (a revocation is never lost to a bad write).
#[derive(Debug)]
pub struct RevocationsFile {
    file: Option<Watched>,
    current: Revocations,
}

impl RevocationsFile {
    /// `None`: no revocation file configured, nothing is ever revoked.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            file: path.map(Watched::new),
            current: Revocations::default(),
        }
    }

    /// The revocations in force.
    pub fn current(&self) -> &Revocations {
        &self.current
    }

    /// Re-reads the file if it changed; a note for the log when something did.
    pub fn refresh(&mut self) -> Option<Note> {
        let file = self.file.as_mut()?;
        let path = file.path().display().to_string();
        match file.poll() {
            Poll::Unchanged => None,
            Poll::Missing(e) => {
                self.current = Revocations::default();
                Some(Note::Warning(format!(
                    "revocations file {path} cannot be read ({e}): nothing is revoked until it \
                     appears"
                )))
            }
            Poll::Changed(text) => match Revocations::from_json(&text) {
                Ok(r) => {
                    let note = Note::Info(format!(
                        "revocations from {path}: {} tokens, {} clients",
                        r.tokens.len(),
                        r.clients.len()
                    ));
                    self.current = r;
                    Some(note)
                }
                Err(e) => Some(Note::Error(format!(
                    "revocations file {path} is malformed ({e}): keeping the previous list \
                     ({} tokens, {} clients)",
                    self.current.tokens.len(),
                    self.current.clients.len()
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn write_atomically(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn key_json(kid: &str) -> String {
        KeySet::new(kid, vec![3; 32]).unwrap().to_json()
    }

    #[test]
    fn a_file_is_read_once_per_change_and_reported_missing_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        let mut w = Watched::new(path.clone());
        assert!(matches!(w.poll(), Poll::Missing(_)));
        assert!(matches!(w.poll(), Poll::Unchanged));
        write_atomically(&path, "one");
        assert!(matches!(w.poll(), Poll::Changed(t) if t == "one"));
        assert!(matches!(w.poll(), Poll::Unchanged));
        // Same size, replaced by rename: a new inode.
        write_atomically(&path, "two");
        assert!(matches!(w.poll(), Poll::Changed(t) if t == "two"));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(w.poll(), Poll::Missing(_)));
        assert!(matches!(w.poll(), Poll::Unchanged));
    }

    #[test]
    fn keys_follow_the_file_and_a_missing_or_malformed_file_leaves_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let mut k = KeysFile::new(path.clone());
        assert!(matches!(k.refresh(), Some(Note::Error(_))));
        assert!(k.keys().is_none());
        write_atomically(&path, &key_json("k1"));
        assert!(matches!(k.refresh(), Some(Note::Info(m)) if m.contains("\"k1\"")));
        assert_eq!(k.keys().map(KeySet::current_kid), Some("k1"));
        assert_eq!(k.refresh(), None);
        write_atomically(&path, "{not json");
        assert!(matches!(k.refresh(), Some(Note::Error(m)) if m.contains("not a valid key set")));
        assert!(k.keys().is_none());
        write_atomically(&path, &key_json("k2"));
        k.refresh();
        assert_eq!(k.keys().map(KeySet::current_kid), Some("k2"));
    }

    #[test]
    fn a_key_note_never_shows_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let json = key_json("k1");
        write_atomically(&path, &json);
        let mut k = KeysFile::new(path);
        let note = format!("{:?}", k.refresh());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let secret = v["keys"]["k1"].as_str().unwrap();
        assert!(!note.contains(secret), "{note}");
    }

    #[test]
    fn revocations_follow_the_file_and_a_malformed_write_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.json");
        let mut r = RevocationsFile::new(Some(path.clone()));
        assert!(matches!(r.refresh(), Some(Note::Warning(_))));
        assert_eq!(r.current(), &Revocations::default());
        write_atomically(&path, r#"{"tokens":["t1"],"clients":{"GID_a@@@1":5}}"#);
        assert!(matches!(r.refresh(), Some(Note::Info(_))));
        assert!(r.current().tokens.contains("t1"));
        write_atomically(&path, r#"{"tokens":"#);
        assert!(matches!(r.refresh(), Some(Note::Error(_))));
        assert!(r.current().tokens.contains("t1"), "kept");
        assert_eq!(RevocationsFile::new(None).refresh(), None);
    }
}
