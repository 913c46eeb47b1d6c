//! The blob store: media files on the filesystem, named by the SHA-256 of their bytes, so a
//! file stored twice takes one place and a name always matches its content.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files under one directory, `ab/cdef…` for a SHA-256 `abcdef…`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn valid_name(sha: &str) -> bool {
    sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl BlobStore {
    /// A store in `root` (created, owner-only, on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, sha: &str) -> Option<PathBuf> {
        valid_name(sha).then(|| self.root.join(&sha[..2]).join(&sha[2..]))
    }

    /// Stores `bytes` durably (written to a temporary file, synced, renamed into place) and
    /// returns their SHA-256.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = sha256_hex(bytes);
        let path = self.path_of(&sha).expect("a SHA-256 hex is a valid name");
        if path.exists() {
            // Freshly touched: the garbage collector leaves recent files alone, so bytes
            // another organisation is about to reference are not deleted under it.
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(std::time::SystemTime::now())?;
            return Ok(sha);
        }
        let dir = path.parent().expect("blob paths have a parent");
        frontdesk_store::create_private_dir(dir)?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(bytes)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(sha)
    }

    /// The bytes stored under `sha`, checked against it; `None` when there are none.
    pub fn get(&self, sha: &str) -> std::io::Result<Option<Vec<u8>>> {
        let Some(path) = self.path_of(sha) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) if sha256_hex(&bytes) == sha => Ok(Some(bytes)),
            Ok(_) => Err(std::io::Error::other(format!(
                "blob {sha} does not match its content"
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Why a garbage collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("could not read or delete in the blob store")]
    Io(#[from] std::io::Error),
    #[error("could not ask which blobs are referenced")]
    Store(#[from] frontdesk_store::StoreError),
    #[error("a blob store task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs looked at.
    pub checked: usize,
    /// Blobs deleted: no organisation referenced them.
    pub deleted: usize,
    /// Unreferenced blobs kept because they were written or touched within the grace time.
    pub recent: usize,
}

impl BlobStore {
    /// Every blob on disk with the time it was last written or touched.
    pub fn list(&self) -> std::io::Result<Vec<(String, SystemTime)>> {
        let mut out = Vec::new();
        let top = match std::fs::read_dir(&self.root) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for dir in top {
            let dir = dir?;
            let prefix = dir.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !dir.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(dir.path())? {
                let f = f?;
                let name = format!("{prefix}{}", f.file_name().to_string_lossy());
                if valid_name(&name) {
                    out.push((name, f.metadata()?.modified()?));
                }
            }
        }
        Ok(out)
    }

    /// When the blob was last written or touched; `None` when there is none.
    fn modified(&self, sha: &str) -> std::io::Result<Option<SystemTime>> {
        let Some(path) = self.path_of(sha) else {
            return Ok(None);
        };
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(m.modified()?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove(&self, sha: &str) -> std::io::Result<()> {
        let Some(path) = self.path_of(sha) else {
            return Ok(());
        };
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Deletes the blobs that no organisation's media references any more: the given ones
/// (an erasure's), or every blob on disk when `candidates` is `None`. Blobs written or
/// touched within `grace` are kept, since an upload stores its bytes before its media row
/// commits.
pub async fn collect_garbage(
    store: &frontdesk_store::Store,
    blobs: &BlobStore,
    candidates: Option<Vec<String>>,
    grace: Duration,
) -> Result<Collected, CollectError> {
    let on_disk: Vec<(String, SystemTime)> = {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || match candidates {
            None => blobs.list(),
            Some(list) => {
                let mut out = Vec::new();
                for sha in list {
                    if let Some(t) = blobs.modified(&sha)? {
                        out.push((sha, t));
                    }
                }
                Ok(out)
            }
        })
        .await??
    };
    let names: Vec<String> = on_disk.iter().map(|(s, _)| s.clone()).collect();
    let used = store.blobs_in_use(&names).await?;
    let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(UNIX_EPOCH);
    let mut report = Collected {
        checked: on_disk.len(),
        ..Collected::default()
    };
    let mut doomed = Vec::new();
    for (sha, modified) in on_disk {
        if used.contains(&sha) {
            continue;
        }
        if modified > cutoff {
            report.recent += 1;
        } else {
            doomed.push(sha);
        }
    }
    report.deleted = doomed.len();
    let blobs = blobs.clone();
    tokio::task::spawn_blocking(move || {
        for sha in doomed {
            blobs.remove(&sha)?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await??;
    Ok(report)
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut rand = [0u8; 8];
    getrandom::fill(&mut rand).map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = dir.join(format!(".tmp-{}", hex::encode(rand)));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    Ok((path.clone(), opts.open(&path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content_and_refuses_tampered_files() {
        let dir = std::env::temp_dir().join(format!("fd-blob-{}", uuid::Uuid::new_v4()));
        let blobs = BlobStore::new(&dir);
        let sha = blobs.put(b"hello").unwrap();
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(blobs.put(b"hello").unwrap(), sha, "same content, same name");
        assert_eq!(blobs.get(&sha).unwrap().unwrap(), b"hello");
        assert!(blobs.get(&"0".repeat(64)).unwrap().is_none());
        assert!(blobs.get("../../etc/passwd").unwrap().is_none());
        std::fs::write(dir.join(&sha[..2]).join(&sha[2..]), b"tampered").unwrap();
        assert!(
            blobs.get(&sha).is_err(),
            "a file that no longer matches its name is refused"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
