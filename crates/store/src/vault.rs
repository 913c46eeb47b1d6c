//! The secret vault: envelope encryption with AES-256-GCM.
//!
//! A master keyring (versions of a 32-byte key, from `FRONTDESK_MASTER_KEY` or a 0600 key
//! file) wraps one data key per organisation; the data key seals values. Every ciphertext
//! starts with a format version and the id of the key that sealed it, and its associated
//! data binds it to its place (organisation, table, column, row), so a ciphertext copied
//! anywhere else fails to open. Key material never appears in `Debug`, logs or errors.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use frontdesk_domain::OrgId;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use zeroize::{Zeroize, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const FORMAT_V1: u8 = 0x01;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Vault failures. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("master key entry {line}: {reason}")]
    KeyFormat { line: usize, reason: &'static str },
    #[error("the master keyring is empty")]
    NoKeys,
    #[error("master key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("master key version {0} is not in the keyring")]
    UnknownMasterVersion(u32),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext format version {0} is not supported")]
    UnsupportedFormat(u8),
    #[error("decryption failed: wrong key, wrong place, or tampered data")]
    Decrypt,
    #[error(
        "the master key comes from FRONTDESK_MASTER_KEY, not a file: add a new version to it (v<N>:<base64>), restart, then run `frontdesk keys rewrap`"
    )]
    NotAFile,
}

/// One version of the master key.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
struct Key([u8; KEY_LEN]);

impl Key {
    fn random() -> Self {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).expect("the OS random number generator works");
        Key(k)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.0).expect("32-byte key")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The master key versions; the highest version is the primary, used for new wrapping.
#[derive(Clone, Default)]
pub struct MasterKeyring {
    keys: BTreeMap<u32, Key>,
}

impl fmt::Debug for MasterKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl MasterKeyring {
    /// A keyring with one fresh random key, version 1.
    pub fn generate() -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, Key::random());
        Self { keys }
    }

    /// Parses entries `v<N>:<base64 of 32 bytes>`, one per line or separated by commas
    /// (an environment variable holds one line); a single bare base64 key is version 1.
    /// Blank entries and `#` comments are skipped. Errors name the entry, never its text.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let mut keys = BTreeMap::new();
        for (i, raw) in text.split(['\n', ',']).enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let (version, b64) = match line.split_once(':') {
                Some((v, k)) => {
                    let v = v
                        .strip_prefix('v')
                        .and_then(|v| v.parse::<u32>().ok())
                        .filter(|v| *v > 0)
                        .ok_or(VaultError::KeyFormat {
                            line: n,
                            reason: "expected v<N>:<base64>",
                        })?;
                    (v, k.trim())
                }
                None => (1, line),
            };
            let mut bytes = Zeroizing::new(B64.decode(b64).map_err(|_| VaultError::KeyFormat {
                line: n,
                reason: "key is not base64",
            })?);
            if bytes.len() != KEY_LEN {
                return Err(VaultError::KeyFormat {
                    line: n,
                    reason: "key must be 32 bytes",
                });
            }
            let mut k = [0u8; KEY_LEN];
            k.copy_from_slice(&bytes);
            bytes.zeroize();
            if keys.insert(version, Key(k)).is_some() {
                return Err(VaultError::KeyFormat {
                    line: n,
                    reason: "version appears twice",
                });
            }
        }
        if keys.is_empty() {
            return Err(VaultError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// The keyring in its file format.
    pub fn to_text(&self) -> SecretString {
        let mut out = String::from(
            "# Frontdesk master keys. Keep secret; losing them loses every stored secret.\n",
        );
        for (v, k) in &self.keys {
            out.push_str(&format!("v{v}:{}\n", B64.encode(k.0)));
        }
        SecretString::from(out)
    }

    pub fn primary_version(&self) -> u32 {
        *self
            .keys
            .keys()
            .next_back()
            .expect("keyring is never empty")
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// This keyring plus a fresh key as the new primary version.
    pub fn with_new_version(&self) -> (Self, u32) {
        let mut next = self.clone();
        let v = self.primary_version() + 1;
        next.keys.insert(v, Key::random());
        (next, v)
    }

    /// Loads the key file, creating it (mode 0600) with one fresh key when missing.
    /// A file readable by group or others is refused.
    pub fn load_or_create_file(path: &Path) -> Result<Self, VaultError> {
        let file_err = |reason: String| VaultError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            let ring = Self::generate();
            write_private_file(path, ring.to_text().expose_secret(), true)
                .map_err(|e| file_err(e.to_string()))?;
            tracing::info!(path = %path.display(), "created a new master key file");
            return Ok(ring);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| file_err(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(file_err(format!(
                    "permissions {:o} let others read it; run chmod 600",
                    mode & 0o777
                )));
            }
        }
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?);
        Self::parse(&text)
    }

    /// Adds a new primary version to the key file (atomically, via a 0600 temp file).
    pub fn rotate_file(path: &Path) -> Result<(Self, u32), VaultError> {
        let ring = Self::load_or_create_file(path)?;
        let (next, v) = ring.with_new_version();
        write_private_file(path, next.to_text().expose_secret(), false).map_err(|e| {
            VaultError::KeyFile {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok((next, v))
    }

    fn key(&self, version: u32) -> Option<&Key> {
        self.keys.get(&version)
    }
}

/// Writes `text` to `path` with mode 0600 from the first byte: through a temp file in the
/// same directory, renamed over the target (or refusing to replace one when `create_new`).
fn write_private_file(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
        uuid::Uuid::new_v4().simple()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    if create_new && path.exists() {
        let _ = std::fs::remove_file(&tmp);
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "key file already exists",
        ));
    }
    std::fs::rename(&tmp, path)
}

/// An organisation's data key.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub(crate) struct DataKey(Key);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    pub(crate) fn random() -> Self {
        DataKey(Key::random())
    }
}

fn dek_aad(org: OrgId, key_id: u32) -> Vec<u8> {
    let mut aad = b"frontdesk.dek.v1|".to_vec();
    aad.extend_from_slice(org.as_uuid().as_bytes());
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

/// Where a sealed value lives; bound into its ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct FieldAad<'a> {
    pub org: OrgId,
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: &'a str,
}

impl FieldAad<'_> {
    /// Domain tag, then each field length-prefixed: no two places encode alike.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for part in [
            b"frontdesk.field.v1".as_slice(),
            self.org.as_uuid().as_bytes(),
            self.table.as_bytes(),
            self.column.as_bytes(),
            self.row_id.as_bytes(),
        ] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).expect("the OS random number generator works");
    n
}

/// The associated data actually authenticated: the header (format and key id) followed
/// by the caller's binding, so the header cannot be altered either.
fn full_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(5 + aad.len());
    full.extend_from_slice(&header[..5]);
    full.extend_from_slice(aad);
    full
}

fn seal_with(key: &Key, header_key_id: u32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = random_nonce();
    let mut header = [0u8; 5];
    header[0] = FORMAT_V1;
    header[1..5].copy_from_slice(&header_key_id.to_be_bytes());
    let ct = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &full_aad(&header, aad),
            },
        )
        .expect("AES-GCM encryption of a bounded message");
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Reads the key id from a ciphertext's header without decrypting it.
pub fn key_id_of(ciphertext: &[u8]) -> Result<u32, VaultError> {
    if ciphertext.len() < HEADER_LEN + 16 {
        return Err(VaultError::Malformed);
    }
    if ciphertext[0] != FORMAT_V1 {
        return Err(VaultError::UnsupportedFormat(ciphertext[0]));
    }
    Ok(u32::from_be_bytes(
        ciphertext[1..5].try_into().expect("4 bytes"),
    ))
}

fn open_with(key: &Key, aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    key_id_of(ciphertext)?;
    let nonce: [u8; NONCE_LEN] = ciphertext[5..HEADER_LEN].try_into().expect("12 bytes");
    key.cipher()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &ciphertext[HEADER_LEN..],
                aad: &full_aad(ciphertext, aad),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Decrypt)
}

/// Wraps a data key under the primary master key: `(master_version, wrapped bytes)`.
pub(crate) fn wrap_data_key(
    ring: &MasterKeyring,
    org: OrgId,
    key_id: u32,
    dek: &DataKey,
) -> (u32, Vec<u8>) {
    let v = ring.primary_version();
    let master = ring.key(v).expect("primary exists");
    (v, seal_with(master, v, &dek_aad(org, key_id), &dek.0.0))
}

pub(crate) fn unwrap_data_key(
    ring: &MasterKeyring,
    org: OrgId,
    key_id: u32,
    master_version: u32,
    wrapped: &[u8],
) -> Result<DataKey, VaultError> {
    let master = ring
        .key(master_version)
        .ok_or(VaultError::UnknownMasterVersion(master_version))?;
    let bytes = open_with(master, &dek_aad(org, key_id), wrapped)?;
    let k: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::Malformed)?;
    Ok(DataKey(Key(k)))
}

pub(crate) fn seal_field(
    dek: &DataKey,
    key_id: u32,
    aad: &FieldAad<'_>,
    plaintext: &[u8],
) -> Vec<u8> {
    seal_with(&dek.0, key_id, &aad.encode(), plaintext)
}

pub(crate) fn open_field(
    dek: &DataKey,
    aad: &FieldAad<'_>,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    open_with(&dek.0, &aad.encode(), ciphertext)
}

/// The vault a store uses: the keyring (reloaded from its file when a newer version shows
/// up, so a rotation needs no restart) and a cache of unwrapped data keys.
pub struct Vault {
    ring: RwLock<Arc<MasterKeyring>>,
    file: Option<PathBuf>,
    /// The key file's modification time and length when last read, to notice a rotation.
    file_stamp: Mutex<Option<(std::time::SystemTime, u64)>>,
    data_keys: Mutex<HashMap<(OrgId, u32), Arc<DataKey>>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("versions", &self.ring().versions())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn derive_from(master: &Key, purpose: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"frontdesk.derive.v1"), &master.0);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(purpose.as_bytes(), out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.len()))
}

impl Vault {
    /// A vault over a keyring held in memory (from `FRONTDESK_MASTER_KEY`).
    pub fn new(ring: MasterKeyring) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            file: None,
            file_stamp: Mutex::new(None),
            data_keys: Mutex::new(HashMap::new()),
        }
    }

    /// A vault over a key file, created (0600) on first use.
    pub fn from_file(path: &Path) -> Result<Self, VaultError> {
        let ring = MasterKeyring::load_or_create_file(path)?;
        Ok(Self {
            ring: RwLock::new(Arc::new(ring)),
            file: Some(path.to_owned()),
            file_stamp: Mutex::new(file_stamp(path)),
            data_keys: Mutex::new(HashMap::new()),
        })
    }

    /// The key file this vault reads, if its keys come from a file.
    pub fn key_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn ring(&self) -> Arc<MasterKeyring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the key file (after `keys rotate` in another process).
    pub fn reload(&self) -> Result<(), VaultError> {
        if let Some(path) = &self.file {
            let stamp = file_stamp(path);
            let ring = MasterKeyring::load_or_create_file(path)?;
            *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
            *self.file_stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        }
        Ok(())
    }

    /// Re-reads the key file when it changed since it was last read, so a server keeps
    /// wrapping new data keys under the newest master key after a rotation, without restart.
    pub fn reload_if_changed(&self) -> Result<(), VaultError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let now = file_stamp(path);
        let seen = *self.file_stamp.lock().unwrap_or_else(|p| p.into_inner());
        if now != seen {
            self.reload()?;
        }
        Ok(())
    }

    /// Replaces the in-memory keyring (a rotation done by this process).
    pub(crate) fn replace_ring(&self, ring: MasterKeyring) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        if let Some(path) = &self.file {
            *self.file_stamp.lock().unwrap_or_else(|p| p.into_inner()) = file_stamp(path);
        }
    }

    pub(crate) fn cached(&self, org: OrgId, key_id: u32) -> Option<Arc<DataKey>> {
        self.data_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(org, key_id))
            .cloned()
    }

    pub(crate) fn remember(&self, org: OrgId, key_id: u32, dek: DataKey) -> Arc<DataKey> {
        let dek = Arc::new(dek);
        self.data_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((org, key_id), dek.clone());
        dek
    }

    /// Forgets every unwrapped data key (tests use it to force unwrapping from storage).
    pub fn forget_data_keys(&self) {
        self.data_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Unwraps with the current keyring, reloading it once if the version is unknown
    /// (another process rotated the key file).
    pub(crate) fn unwrap(
        &self,
        org: OrgId,
        key_id: u32,
        master_version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, VaultError> {
        match unwrap_data_key(&self.ring(), org, key_id, master_version, wrapped) {
            Err(VaultError::UnknownMasterVersion(_)) if self.file.is_some() => {
                self.reload()?;
                unwrap_data_key(&self.ring(), org, key_id, master_version, wrapped)
            }
            other => other,
        }
    }

    /// A 32-byte key for `purpose` derived (HKDF-SHA256) from the primary master key, with
    /// the master version it comes from. Used for keys that need no storage, such as the
    /// access-token signing key; rotating the master key rotates them too.
    pub fn derive(&self, purpose: &str) -> (u32, Zeroizing<[u8; KEY_LEN]>) {
        if let Err(e) = self.reload_if_changed() {
            tracing::warn!(error = %e, "could not re-read the master key file");
        }
        let ring = self.ring();
        let v = ring.primary_version();
        (
            v,
            derive_from(ring.key(v).expect("primary exists"), purpose),
        )
    }

    /// The key for `purpose` derived from master version `version`, if the keyring has it.
    pub fn derive_version(&self, version: u32, purpose: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        if self.ring().key(version).is_none() && self.file.is_some() {
            let _ = self.reload();
        }
        self.ring().key(version).map(|k| derive_from(k, purpose))
    }

    /// Wraps a data key under the newest master key this vault knows.
    pub(crate) fn wrap(&self, org: OrgId, key_id: u32, dek: &DataKey) -> (u32, Vec<u8>) {
        if let Err(e) = self.reload_if_changed() {
            tracing::warn!(error = %e, "could not re-read the master key file; wrapping with the keys in memory");
        }
        wrap_data_key(&self.ring(), org, key_id, dek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(org: OrgId, row: &str) -> FieldAad<'_> {
        FieldAad {
            org,
            table: "org_secrets",
            column: "ciphertext",
            row_id: row,
        }
    }

    #[test]
    fn sealed_value_opens_only_in_its_place() {
        let org = OrgId::new();
        let dek = DataKey::random();
        let ct = seal_field(&dek, 7, &aad(org, "r1"), b"token-123");
        assert_eq!(key_id_of(&ct).unwrap(), 7);
        assert_eq!(
            open_field(&dek, &aad(org, "r1"), &ct).unwrap().as_slice(),
            b"token-123"
        );
        assert!(matches!(
            open_field(&dek, &aad(org, "r2"), &ct),
            Err(VaultError::Decrypt)
        ));
        assert!(matches!(
            open_field(&dek, &aad(OrgId::new(), "r1"), &ct),
            Err(VaultError::Decrypt)
        ));
        let other_col = FieldAad {
            column: "other",
            ..aad(org, "r1")
        };
        assert!(open_field(&dek, &other_col, &ct).is_err());
        assert!(open_field(&DataKey::random(), &aad(org, "r1"), &ct).is_err());
    }

    #[test]
    fn same_plaintext_seals_differently_and_tampering_fails() {
        let org = OrgId::new();
        let dek = DataKey::random();
        let a = seal_field(&dek, 1, &aad(org, "r"), b"same");
        let b = seal_field(&dek, 1, &aad(org, "r"), b"same");
        assert_ne!(a, b, "random nonces");
        for i in 0..a.len() {
            let mut t = a.clone();
            t[i] ^= 0x01;
            assert!(
                open_field(&dek, &aad(org, "r"), &t).is_err(),
                "bit flip at {i} accepted"
            );
        }
        assert!(matches!(
            open_field(&dek, &aad(org, "r"), &a[..20]),
            Err(VaultError::Malformed)
        ));
        let mut v2 = a.clone();
        v2[0] = 2;
        assert!(matches!(
            open_field(&dek, &aad(org, "r"), &v2),
            Err(VaultError::UnsupportedFormat(2))
        ));
    }

    #[test]
    fn aad_encoding_is_unambiguous() {
        let org = OrgId::new();
        let x = FieldAad {
            org,
            table: "ab",
            column: "c",
            row_id: "r",
        }
        .encode();
        let y = FieldAad {
            org,
            table: "a",
            column: "bc",
            row_id: "r",
        }
        .encode();
        assert_ne!(x, y);
    }

    #[test]
    fn data_keys_survive_master_rotation() {
        let org = OrgId::new();
        let ring1 = MasterKeyring::generate();
        let dek = DataKey::random();
        let (v, wrapped) = wrap_data_key(&ring1, org, 1, &dek);
        assert_eq!(v, 1);
        let (ring2, v2) = ring1.with_new_version();
        assert_eq!(v2, 2);
        // Old version still unwraps under the rotated ring.
        let back = unwrap_data_key(&ring2, org, 1, 1, &wrapped).unwrap();
        assert_eq!(back.0.0, dek.0.0);
        let (nv, rewrapped) = wrap_data_key(&ring2, org, 1, &back);
        assert_eq!(nv, 2);
        // A ring holding only v2 opens the re-wrapped key, not the old one.
        let only_v2 = MasterKeyring {
            keys: ring2
                .keys
                .iter()
                .filter(|(v, _)| **v == 2)
                .map(|(v, k)| (*v, k.clone()))
                .collect(),
        };
        assert!(unwrap_data_key(&only_v2, org, 1, 2, &rewrapped).is_ok());
        assert!(matches!(
            unwrap_data_key(&only_v2, org, 1, 1, &wrapped),
            Err(VaultError::UnknownMasterVersion(1))
        ));
        // Bound to org and key id.
        assert!(unwrap_data_key(&ring2, OrgId::new(), 1, 2, &rewrapped).is_err());
        assert!(unwrap_data_key(&ring2, org, 2, 2, &rewrapped).is_err());
    }

    #[test]
    fn keyring_text_round_trips_and_errors_do_not_echo_keys() {
        let ring = MasterKeyring::generate().with_new_version().0;
        let text = ring.to_text();
        let back = MasterKeyring::parse(text.expose_secret()).unwrap();
        assert_eq!(back.versions(), vec![1, 2]);
        let secret_line = text
            .expose_secret()
            .lines()
            .find(|l| l.starts_with("v1:"))
            .unwrap()
            .to_owned();
        let b64 = &secret_line[3..];
        let dbg = format!("{ring:?} {:?} {:?}", ring.keys[&1], DataKey::random());
        assert!(!dbg.contains(b64), "{dbg}");
        let bad = format!("v1:{}\nv1:{}", b64, b64);
        let err = MasterKeyring::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("entry 2") && !err.contains(b64), "{err}");
        let from_env = format!("v1:{b64}, v2:{}", B64.encode([7u8; 32]));
        assert_eq!(
            MasterKeyring::parse(&from_env).unwrap().versions(),
            vec![1, 2]
        );
        let err = MasterKeyring::parse("v1:not*base64")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("not*base64"), "{err}");
        assert!(
            MasterKeyring::parse(&B64.encode([9u8; 32]))
                .unwrap()
                .versions()
                == vec![1]
        );
        assert!(matches!(
            MasterKeyring::parse("# only a comment\n"),
            Err(VaultError::NoKeys)
        ));
    }

    #[test]
    fn key_file_is_created_private_and_a_readable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.keys");
        let ring = MasterKeyring::load_or_create_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = MasterKeyring::load_or_create_file(&path).unwrap();
        assert_eq!(
            again.to_text().expose_secret(),
            ring.to_text().expose_secret()
        );
        let (rotated, v) = MasterKeyring::rotate_file(&path).unwrap();
        assert_eq!((v, rotated.versions()), (2, vec![1, 2]));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKeyring::load_or_create_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
