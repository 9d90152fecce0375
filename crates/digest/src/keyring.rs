//! The signing keys of every region, kept on disk under the data directory.
//!
//! ```text
//! <dir>/<region>/index.json          public half and validity of every key (never pruned)
//! <dir>/<region>/<fingerprint>.pem   PKCS#1 private key, mode 0600
//! ```
//!
//! A region's first key is generated the first time a digest for it is signed.
//! A key signs from its `valid_from` until its `valid_until` (`valid_from` plus
//! the rotation period); the first signature needed after that generates the
//! next key. Old keys stay listed forever, so every digest ever signed can be
//! validated. Every file is written atomically (temporary file, fsync, rename).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::keys::SigningKey;

/// A public key and the time range it signs in, as ListPublicKeys answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyRecord {
    /// Lower-case hex MD5 of the DER bytes.
    pub fingerprint: String,
    /// Standard base64 of the DER of the PKCS#1 `RSAPublicKey`.
    pub value: String,
    /// First instant the key signs.
    pub valid_from: DateTime<Utc>,
    /// The key signs strictly before this instant.
    pub valid_until: DateTime<Utc>,
}

impl PublicKeyRecord {
    /// The DER bytes of the key.
    pub fn der(&self) -> Result<Vec<u8>, Error> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.value)
            .map_err(|e| Error::Key(format!("stored public key is not base64: {e}")))
    }
}

#[derive(Debug, Default)]
struct RegionKeys {
    records: Vec<PublicKeyRecord>,
    loaded: HashMap<String, Arc<SigningKey>>,
}

/// Every region's signing keys.
#[derive(Debug)]
pub struct Keyring {
    dir: PathBuf,
    rotation: Duration,
    regions: Mutex<HashMap<String, RegionKeys>>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Writes `bytes` to `path` atomically with the given Unix mode.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&tmp)
        .map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io(format!("creating {}", dir.display())))
}

impl Keyring {
    /// Opens (creating if needed) the keyring in `dir`; keys rotate every `rotation`.
    pub fn open(dir: &Path, rotation: Duration) -> Result<Self, Error> {
        create_private_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            rotation: rotation.max(Duration::from_secs(1)),
            regions: Mutex::new(HashMap::new()),
        })
    }

    fn region_dir(&self, region: &str) -> Result<PathBuf, Error> {
        if !valid_region(region) {
            return Err(Error::Key(format!("not a region name: {region:?}")));
        }
        Ok(self.dir.join(region))
    }

    fn load_region<'a>(
        &self,
        regions: &'a mut HashMap<String, RegionKeys>,
        region: &str,
    ) -> Result<&'a mut RegionKeys, Error> {
        if !regions.contains_key(region) {
            let index = self.region_dir(region)?.join("index.json");
            let records = match std::fs::read(&index) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Key(format!("{} is corrupt: {e}", index.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(io(format!("reading {}", index.display()))(e)),
            };
            regions.insert(
                region.to_owned(),
                RegionKeys {
                    records,
                    loaded: HashMap::new(),
                },
            );
        }
        regions
            .get_mut(region)
            .ok_or_else(|| Error::Key("region vanished".into()))
    }

    /// The key that signs `region`'s digests at `at`, generating the region's
    /// next key when the current one's validity has ended.
    ///
    /// Asking again for the same `at` gives the same key, so a digest rebuilt
    /// after a crash is signed exactly as before.
    pub fn signing_key(&self, region: &str, at: DateTime<Utc>) -> Result<Arc<SigningKey>, Error> {
        let at = at.trunc_subsecs(0);
        let region_dir = self.region_dir(region)?;
        let mut regions = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        let keys = self.load_region(&mut regions, region)?;
        let covering = keys
            .records
            .iter()
            .rev()
            .find(|r| r.valid_from <= at && at < r.valid_until)
            .cloned();
        let record = match covering {
            Some(r) => r,
            None if keys
                .records
                .last()
                .is_some_and(|last| at < last.valid_until) =>
            {
                // Earlier than every key (a clock step back): the oldest key still answers.
                keys.records
                    .iter()
                    .find(|r| at < r.valid_until)
                    .cloned()
                    .ok_or_else(|| Error::Key("no key".into()))?
            }
            None => {
                create_private_dir(&region_dir)?;
                let key = SigningKey::generate()?;
                let pem = key.to_pkcs1_pem()?;
                write_atomic(
                    &region_dir.join(format!("{}.pem", key.fingerprint())),
                    pem.as_bytes(),
                    0o600,
                )?;
                let rotation =
                    chrono::Duration::from_std(self.rotation).unwrap_or(chrono::Duration::days(30));
                let record = PublicKeyRecord {
                    fingerprint: key.fingerprint().to_owned(),
                    value: base64::engine::general_purpose::STANDARD.encode(key.public_key_der()),
                    valid_from: at,
                    valid_until: at + rotation,
                };
                let mut records = keys.records.clone();
                records.push(record.clone());
                let index =
                    serde_json::to_vec_pretty(&records).map_err(|e| Error::Key(e.to_string()))?;
                write_atomic(&region_dir.join("index.json"), &index, 0o644)?;
                keys.records = records;
                tracing::info!(region, fingerprint = %record.fingerprint, valid_until = %record.valid_until, "generated a digest signing key");
                keys.loaded
                    .insert(record.fingerprint.clone(), Arc::new(key));
                record
            }
        };
        if let Some(key) = keys.loaded.get(&record.fingerprint) {
            return Ok(key.clone());
        }
        let path = region_dir.join(format!("{}.pem", record.fingerprint));
        let pem =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        let key = Arc::new(SigningKey::from_pkcs1_pem(&pem)?);
        if key.fingerprint() != record.fingerprint {
            return Err(Error::Key(format!(
                "{} does not hold the key its name says",
                path.display()
            )));
        }
        keys.loaded.insert(record.fingerprint.clone(), key.clone());
        Ok(key)
    }

    /// The public keys of `region` that sign at some instant of `[start, end]`.
    pub fn public_keys(
        &self,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<PublicKeyRecord>, Error> {
        if !valid_region(region) {
            return Ok(Vec::new());
        }
        let mut regions = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        let keys = self.load_region(&mut regions, region)?;
        Ok(keys
            .records
            .iter()
            .filter(|r| r.valid_from <= end && start < r.valid_until)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn test_rotation_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path(), Duration::from_secs(3600)).unwrap();
        assert!(
            ring.public_keys(
                "us-east-1",
                at("2024-01-01T00:00:00Z"),
                at("2030-01-01T00:00:00Z")
            )
            .unwrap()
            .is_empty()
        );
        let k1 = ring
            .signing_key("us-east-1", at("2024-05-01T10:00:00Z"))
            .unwrap();
        let same = ring
            .signing_key("us-east-1", at("2024-05-01T10:59:59Z"))
            .unwrap();
        assert_eq!(k1.fingerprint(), same.fingerprint());
        let k2 = ring
            .signing_key("us-east-1", at("2024-05-01T11:00:00Z"))
            .unwrap();
        assert_ne!(k1.fingerprint(), k2.fingerprint());
        let other = ring
            .signing_key("eu-west-1", at("2024-05-01T10:30:00Z"))
            .unwrap();
        assert_ne!(other.fingerprint(), k1.fingerprint());

        let reopened = Keyring::open(dir.path(), Duration::from_secs(3600)).unwrap();
        let again = reopened
            .signing_key("us-east-1", at("2024-05-01T10:30:00Z"))
            .unwrap();
        assert_eq!(again.fingerprint(), k1.fingerprint());
        let all = reopened
            .public_keys(
                "us-east-1",
                at("2024-05-01T00:00:00Z"),
                at("2024-05-02T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].der().unwrap(), k1.public_key_der());
        let only_first = reopened
            .public_keys(
                "us-east-1",
                at("2024-05-01T10:10:00Z"),
                at("2024-05-01T10:20:00Z"),
            )
            .unwrap();
        assert_eq!(only_first.len(), 1);
        assert_eq!(only_first[0].fingerprint, k1.fingerprint());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let pem = dir
                .path()
                .join("us-east-1")
                .join(format!("{}.pem", k1.fingerprint()));
            let mode = std::fs::metadata(pem).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            ring.signing_key("../etc", at("2024-05-01T10:00:00Z"))
                .is_err()
        );
    }
}
