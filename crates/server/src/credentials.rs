//! The root credentials: from the environment, or generated on first start.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::config::{ENV_ROOT_ACCESS_KEY_ID, ENV_ROOT_SECRET_ACCESS_KEY};

/// The profile name in the credentials file the server writes.
pub const PROFILE: &str = "cairn";

/// Where the root credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// The environment.
    Environment,
    /// The credentials file in the data dir (written earlier).
    File(PathBuf),
    /// Generated now and written to the file.
    Generated(PathBuf),
}

/// The root access key pair.
#[derive(Clone)]
pub struct RootCredentials {
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Where they came from.
    pub source: CredentialSource,
}

impl std::fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Reads `aws_access_key_id` / `aws_secret_access_key` of one profile of an INI credentials file.
fn read_profile(text: &str, profile: &str) -> Option<(String, String)> {
    let mut in_profile = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            in_profile = line[1..line.len() - 1].trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    Some((id?, secret?))
}

/// The root credentials: the environment wins; else the data dir's file; else
/// a new random pair is written there (mode 0600, atomically).
pub fn load_or_create(
    data_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> std::io::Result<RootCredentials> {
    if let (Some(id), Some(secret)) = (env(ENV_ROOT_ACCESS_KEY_ID), env(ENV_ROOT_SECRET_ACCESS_KEY))
        && !id.is_empty()
        && !secret.is_empty()
    {
        return Ok(RootCredentials {
            access_key_id: id,
            secret_access_key: secret,
            source: CredentialSource::Environment,
        });
    }
    let path = data_dir.join("credentials");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (id, secret) = read_profile(&text, PROFILE).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} has no [{PROFILE}] profile with both keys",
                        path.display()
                    ),
                )
            })?;
            return Ok(RootCredentials {
                access_key_id: id,
                secret_access_key: secret,
                source: CredentialSource::File(path),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = format!(
        "AKIA{}",
        random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    );
    let secret = random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    let text = format!("[{PROFILE}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    write_private_file_atomically(&path, text.as_bytes())?;
    Ok(RootCredentials {
        access_key_id: id,
        secret_access_key: secret,
        source: CredentialSource::Generated(path),
    })
}

/// Writes a file readable by its owner only: temp file, fsync, rename, fsync the directory.
pub fn write_private_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_generated_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), |_| None).unwrap();
        assert!(matches!(first.source, CredentialSource::Generated(_)));
        assert!(first.access_key_id.starts_with("AKIA"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("credentials"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_create(dir.path(), |_| None).unwrap();
        assert_eq!(first.access_key_id, second.access_key_id);
        assert_eq!(first.secret_access_key, second.secret_access_key);
        assert!(!format!("{second:?}").contains(&second.secret_access_key));
    }

    #[test]
    fn test_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_or_create(dir.path(), |k| match k {
            ENV_ROOT_ACCESS_KEY_ID => Some("AKIDEXAMPLE".into()),
            ENV_ROOT_SECRET_ACCESS_KEY => Some("secret".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.source, CredentialSource::Environment);
        assert!(!dir.path().join("credentials").exists());
    }
}
