//! The key that signs SNS documents, the certificate `SigningCertURL` serves,
//! and the receiver's check.
//!
//! ```text
//! <dir>/                      mode 0700
//! <dir>/sns-signing-key.pem   PKCS#1 RSA 2048 private key, mode 0600
//! <dir>/sns-signing-cert.pem  self-signed X.509 certificate, mode 0644
//! ```
//!
//! The key is generated once and kept; the certificate is reissued for the
//! same key only when it is missing, unreadable, for another key, or expired.
//! Files are written atomically (temporary file, fsync, rename, fsync of the
//! directory) so a crash leaves the old file or the new one, never half. The
//! key is put in place with a hard link instead of a rename, which never
//! replaces a key another process created meanwhile; open the key once per
//! process, at start-up.
//!
//! SignatureVersion 1 is SHA1withRSA and 2 is SHA256withRSA, both
//! RSASSA-PKCS1-v1_5, base64 (the developer guide). SNS's own certificates
//! are issued by a public CA; receivers that insist on that (the AWS SDKs'
//! validators check the URL's host and the chain) must be pointed at Cairn's
//! certificate explicitly.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::SystemTime;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rsa::pkcs1::der::zeroize::Zeroizing;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::sha2::{Digest as _, Sha256};
use rsa::{Pkcs1v15Sign, PrivateKey, PublicKey};
use sha1::Sha1;
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::der::{DecodePem as _, Encode as _, EncodePem as _, pem::LineEnding};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::ext::{Extension, ToExtension as _};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};

use crate::Error;
use crate::message::{MessageType, string_to_sign_from};

/// The private key's file name in the key directory.
pub const KEY_FILE: &str = "sns-signing-key.pem";
/// The certificate's file name in the key directory.
pub const CERT_FILE: &str = "sns-signing-cert.pem";

/// The certificate's subject and issuer (self-signed).
pub const CERT_SUBJECT: &str = "CN=Cairn SNS message signing,O=Cairn";

/// How long a certificate is valid for: ten years, so that receivers that
/// cache it are not surprised; the key never changes anyway.
const CERT_DAYS: i64 = 3650;

/// How far before its issue a certificate's validity starts, so that a
/// receiver whose clock runs behind does not find it not yet valid.
const CERT_BACKDATE_HOURS: i64 = 24;

/// RSA modulus size, as SNS's own signing keys.
const KEY_BITS: usize = 2048;

/// The hash a signature is made over, by `SignatureVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureVersion {
    /// `1`: SHA1withRSA, SNS's default for a topic.
    #[default]
    V1,
    /// `2`: SHA256withRSA, chosen with the topic attribute `SignatureVersion=2`.
    V2,
}

impl SignatureVersion {
    /// The value of `SignatureVersion` in a document and as a topic attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V1 => "1",
            SignatureVersion::V2 => "2",
        }
    }

    /// Reads `1` or `2`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1" => Some(SignatureVersion::V1),
            "2" => Some(SignatureVersion::V2),
            _ => None,
        }
    }

    fn scheme_and_hash(self, message: &[u8]) -> (Pkcs1v15Sign, Vec<u8>) {
        match self {
            SignatureVersion::V1 => (Pkcs1v15Sign::new::<Sha1>(), Sha1::digest(message).to_vec()),
            SignatureVersion::V2 => (
                Pkcs1v15Sign::new::<Sha256>(),
                Sha256::digest(message).to_vec(),
            ),
        }
    }
}

/// The signing key and its certificate.
pub struct SigningKey {
    private: PrivateKey,
    certificate_pem: String,
    not_after: DateTime<Utc>,
}

impl std::fmt::Debug for SigningKey {
    // Never print the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

fn key_error(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |e| Error::Key(format!("{what}: {e}"))
}

impl SigningKey {
    /// Opens the key kept in `dir`, generating it on first use, and makes
    /// sure a certificate for it, valid at `now`, is stored beside it.
    ///
    /// `dir` is created with mode 0700 if missing and tightened to 0700 if
    /// not: it holds a private key.
    pub fn open(dir: &Path, now: DateTime<Utc>) -> Result<Self, Error> {
        create_private_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        let private = match std::fs::read_to_string(&key_path) {
            Ok(pem) => PrivateKey::from_pkcs1_pem(&Zeroizing::new(pem)).map_err(|e| {
                Error::Key(format!(
                    "cannot read the key in {}: {e}",
                    key_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let private = PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
                    .map_err(|e| key_error("cannot generate an RSA key")(e.to_string()))?;
                let pem = private
                    .to_pkcs1_pem(LineEnding::LF)
                    .map_err(|e| key_error("cannot encode the key")(e.to_string()))?;
                if write_atomic(&key_path, pem.as_bytes(), 0o600, Existing::Keep)? {
                    private
                } else {
                    // Another process created the key meanwhile: use that one.
                    let pem = Zeroizing::new(
                        std::fs::read_to_string(&key_path)
                            .map_err(io(format!("reading {}", key_path.display())))?,
                    );
                    PrivateKey::from_pkcs1_pem(&pem).map_err(|e| {
                        Error::Key(format!(
                            "cannot read the key in {}: {e}",
                            key_path.display()
                        ))
                    })?
                }
            }
            Err(e) => return Err(io(format!("reading {}", key_path.display()))(e)),
        };
        let cert_path = dir.join(CERT_FILE);
        if let Ok(pem) = std::fs::read_to_string(&cert_path)
            && let Ok(not_after) = certificate_fits(&pem, &private, now)
        {
            return Ok(Self {
                private,
                certificate_pem: pem,
                not_after,
            });
        }
        let (certificate_pem, not_after) = self_signed_certificate(&private, now)?;
        write_atomic(
            &cert_path,
            certificate_pem.as_bytes(),
            0o644,
            Existing::Replace,
        )?;
        Ok(Self {
            private,
            certificate_pem,
            not_after,
        })
    }

    /// The certificate, PEM: the body to serve at `SigningCertURL`.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// When the certificate stops being valid; [`SigningKey::open`] again after
    /// that issues a new one for the same key.
    pub fn certificate_not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// A file name for the certificate in SNS's style,
    /// `SimpleNotificationService-<32 hex digits>.pem`, the digits from the
    /// SHA-256 of the certificate: a new certificate gets a new name, so
    /// receivers that cache certificates by `SigningCertURL` never use a
    /// stale one.
    pub fn certificate_file_name(&self) -> String {
        let digest = Sha256::digest(self.certificate_pem.as_bytes());
        format!(
            "SimpleNotificationService-{}.pem",
            hex::encode(&digest[..16])
        )
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.private.to_public_key()
    }

    /// Signs `string_to_sign` by `version`, as base64: a document's `Signature`.
    pub fn sign(&self, version: SignatureVersion, string_to_sign: &[u8]) -> Result<String, Error> {
        let (scheme, hashed) = version.scheme_and_hash(string_to_sign);
        // rsa blinds the private operation with the OS's random source here.
        let signature = self
            .private
            .sign(scheme, &hashed)
            .map_err(|e| Error::Key(format!("cannot sign: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }
}

/// The certificate's `notAfter` when `pem` is a certificate for `private`'s
/// public key that is valid at `now`.
fn certificate_fits(
    pem: &str,
    private: &PrivateKey,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    let cert = Certificate::from_pem(pem).map_err(|e| Error::Key(e.to_string()))?;
    let ours = SubjectPublicKeyInfoOwned::from_key(&private.to_public_key())
        .map_err(|e| Error::Key(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    if tbs.subject_public_key_info() != &ours {
        return Err(Error::Key("the certificate is for another key".to_owned()));
    }
    let validity = tbs.validity();
    let not_before = DateTime::<Utc>::from(validity.not_before.to_system_time());
    let not_after = DateTime::<Utc>::from(validity.not_after.to_system_time());
    if now < not_before || now >= not_after {
        return Err(Error::Key("the certificate is not valid now".to_owned()));
    }
    Ok(not_after)
}

/// A leaf certificate signing itself: subject = issuer, not a CA, good for
/// digital signatures only.
struct SelfSignedLeaf {
    subject: Name,
}

impl BuilderProfile for SelfSignedLeaf {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    // Each extension is built seeing the ones before it, hence the pushes.
    #[allow(clippy::vec_init_then_push)]
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions = Vec::new();
        extensions.push(
            BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }
            .to_extension(tbs.subject(), &extensions)?,
        );
        extensions.push(
            KeyUsage(KeyUsages::DigitalSignature.into())
                .to_extension(tbs.subject(), &extensions)?,
        );
        extensions
            .push(SubjectKeyIdentifier::try_from(spk)?.to_extension(tbs.subject(), &extensions)?);
        Ok(extensions)
    }
}

/// Issues a certificate for `private`, valid from a day before `now` for [`CERT_DAYS`],
/// signed SHA256withRSA by the key itself.
fn self_signed_certificate(
    private: &PrivateKey,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), Error> {
    let cert_error = key_error("cannot issue the signing certificate");
    let not_before = now - chrono::Duration::hours(CERT_BACKDATE_HOURS);
    let not_after = now + chrono::Duration::days(CERT_DAYS);
    let time = |t: DateTime<Utc>| Time::try_from(SystemTime::from(t));
    let validity = match (time(not_before), time(not_after)) {
        (Ok(a), Ok(b)) => Validity::new(a, b),
        (Err(e), _) | (_, Err(e)) => return Err(cert_error(e.to_string())),
    };
    // A positive 16-byte serial: the top bit cleared, never zero.
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial)
        .map_err(|e| Error::Key(format!("cannot read random bytes: {e}")))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| Error::Key(e.to_string()))?;
    let subject = Name::from_str(CERT_SUBJECT).map_err(|e| Error::Key(e.to_string()))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(&private.to_public_key())
        .map_err(|e| Error::Key(e.to_string()))?;
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(private.clone());
    let cert = CertificateBuilder::new(SelfSignedLeaf { subject }, serial, validity, spki)
        .and_then(|b| b.build::<_, rsa::pkcs1v15::Signature>(&signer))
        .map_err(|e| Error::Key(format!("cannot issue the signing certificate: {e}")))?;
    let pem = cert
        .to_pem(LineEnding::LF)
        .map_err(|e| Error::Key(e.to_string()))?;
    // The certificate's own notAfter, which X.509 time encoding may have rounded.
    let not_after =
        DateTime::<Utc>::from(cert.tbs_certificate().validity().not_after.to_system_time());
    Ok((pem, not_after))
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("restricting {}", dir.display())))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(())
}

/// How [`write_atomic`] treats a file already at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Replace it (the certificate).
    Replace,
    /// Keep it and report that nothing was written (the key: when two
    /// processes race to create it, both end up using the one that landed).
    Keep,
}

/// Writes `bytes` to `path` atomically with the given Unix mode: a temporary
/// file of this process's own, fsync, rename (or hard link, to never replace
/// an existing file), fsync of the directory. Returns whether it wrote.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32, existing: Existing) -> Result<bool, Error> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce)
        .map_err(|e| Error::Key(format!("cannot read random bytes: {e}")))?;
    let tmp: PathBuf = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Created with its final mode: the key is never readable by others,
        // not even for a moment.
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options
        .open(&tmp)
        .and_then(|mut file| {
            // The umask may have narrowed the mode; the certificate must stay readable.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(io(format!("writing {}", tmp.display())));
    let placed = written.and_then(|()| match existing {
        Existing::Replace => std::fs::rename(&tmp, path)
            .map(|()| true)
            .map_err(io(format!("renaming to {}", path.display()))),
        Existing::Keep => {
            let linked = match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io(format!("linking {}", path.display()))(e)),
            };
            let _ = std::fs::remove_file(&tmp);
            linked
        }
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let placed = placed?;
    // The new name is durable only once the directory is.
    if placed && let Ok(d) = std::fs::File::open(dir) {
        d.sync_all()
            .map_err(io(format!("syncing {}", dir.display())))?;
    }
    Ok(placed)
}

/// Checks a received SNS document as the developer guide tells receivers to:
/// read `Type` and `SignatureVersion`, rebuild the string to sign from the
/// document's own fields, and verify `Signature` with the public key of the
/// certificate (`certificate_pem`, fetched by the caller from
/// `SigningCertURL` after checking that URL is one it trusts).
///
/// Returns the document's type. It does not judge the certificate's issuer or
/// the URL: that trust decision belongs to the caller.
pub fn verify_message(body: &str, certificate_pem: &str) -> Result<MessageType, Error> {
    let fail = |m: &str| Error::Verify(m.to_owned());
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).map_err(|e| Error::Verify(format!("not a JSON object: {e}")))?;
    let field = |name: &str| doc.get(name).and_then(serde_json::Value::as_str);
    let message_type = field("Type")
        .and_then(MessageType::parse)
        .ok_or_else(|| fail("unknown or missing Type"))?;
    let version = field("SignatureVersion")
        .and_then(SignatureVersion::parse)
        .ok_or_else(|| fail("unknown or missing SignatureVersion"))?;
    let signature = field("Signature")
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| fail("missing or non-base64 Signature"))?;
    let string = string_to_sign_from(message_type, field)?;
    let cert = Certificate::from_pem(certificate_pem)
        .map_err(|e| Error::Verify(format!("cannot read the certificate: {e}")))?;
    let spki_der = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| Error::Verify(e.to_string()))?;
    let public = <PublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki_der)
        .map_err(|e| Error::Verify(format!("the certificate holds no RSA key: {e}")))?;
    let (scheme, hashed) = version.scheme_and_hash(string.as_bytes());
    public
        .verify(scheme, &hashed, &signature)
        .map_err(|_| fail("the signature does not match"))?;
    Ok(message_type)
}

#[cfg(test)]
mod tests;
