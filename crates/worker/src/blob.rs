//! The blob store: media files on the filesystem, named by the SHA-256 of their bytes, so a
//! file stored twice takes one place and a name always matches its content.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

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
