//! SHA256withRSA signing keys, their public form and fingerprints.
//!
//! CloudTrail publishes each region's public key through ListPublicKeys as the
//! DER encoding of a PKCS#1 `RSAPublicKey` (not SubjectPublicKeyInfo: the AWS
//! CLI loads it with `load_pkcs1`), and names it by the lower-case hex MD5 of
//! those DER bytes, the fingerprint every digest carries.

use md5::Md5;
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::sha2::Digest as _;
use rsa::sha2::Sha256;
use rsa::{Pkcs1v15Sign, PrivateKey, PublicKey};

use crate::Error;

/// The value of `digestSignatureAlgorithm` and of the `signature-algorithm` metadata.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";

/// The lower-case hex MD5 of a public key's DER bytes: its CloudTrail fingerprint.
pub fn fingerprint(public_der: &[u8]) -> String {
    hex::encode(<Md5 as md5::Digest>::digest(public_der))
}

/// A private key that signs digests.
pub struct SigningKey {
    private: PrivateKey,
    public_der: Vec<u8>,
    fingerprint: String,
}

impl std::fmt::Debug for SigningKey {
    // Never print the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key with public exponent 65537, as CloudTrail's.
    pub fn generate() -> Result<Self, Error> {
        let private = PrivateKey::new(&mut getrandom::SysRng, 2048)
            .map_err(|e| Error::Key(format!("cannot generate an RSA key: {e}")))?;
        Self::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<Self, Error> {
        let public_der = private
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| Error::Key(format!("cannot encode a public key: {e}")))?
            .into_vec();
        let fingerprint = fingerprint(&public_der);
        Ok(Self {
            private,
            public_der,
            fingerprint,
        })
    }

    /// Reads a key written by [`SigningKey::to_pkcs1_pem`].
    pub fn from_pkcs1_pem(pem: &str) -> Result<Self, Error> {
        let private = PrivateKey::from_pkcs1_pem(pem)
            .map_err(|e| Error::Key(format!("cannot read a private key: {e}")))?;
        Self::from_private(private)
    }

    /// The private key as PKCS#1 PEM (`RSA PRIVATE KEY`), zeroed when dropped.
    pub fn to_pkcs1_pem(&self) -> Result<rsa::pkcs1::der::zeroize::Zeroizing<String>, Error> {
        self.private
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| Error::Key(format!("cannot encode a private key: {e}")))
    }

    /// The public key: DER of the PKCS#1 `RSAPublicKey`, as ListPublicKeys returns it.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Signs `message` with RSASSA-PKCS1-v1_5 over its SHA-256, as lower-case hex.
    pub fn sign_hex(&self, message: &[u8]) -> Result<String, Error> {
        let hashed = Sha256::digest(message);
        let signature = self
            .private
            .sign(Pkcs1v15Sign::new::<Sha256>(), &hashed)
            .map_err(|e| Error::Key(format!("cannot sign: {e}")))?;
        Ok(hex::encode(signature))
    }
}

/// A public key as ListPublicKeys serves it.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    key: PublicKey,
}

impl VerifyingKey {
    /// Loads the DER of a PKCS#1 `RSAPublicKey`.
    ///
    /// Fails for anything else, SubjectPublicKeyInfo included, as the AWS CLI does.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, Error> {
        PublicKey::from_pkcs1_der(der)
            .map(|key| Self { key })
            .map_err(|e| Error::Key(format!("not a PKCS #1 public key: {e}")))
    }

    /// Whether `signature` is a SHA256withRSA signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let hashed = Sha256::digest(message);
        self.key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn test_fingerprint_is_lower_case_md5_hex() {
        // RFC 1321 test suite.
        assert_eq!(fingerprint(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(fingerprint(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn test_sign_verify_and_pem_round_trip() {
        let key = SigningKey::generate().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.public_key_der());
        assert!(b64.starts_with("MIIBCgKCAQEA"), "{b64}");
        assert_eq!(key.fingerprint().len(), 32);
        let signature = key.sign_hex(b"string to sign").unwrap();
        assert_eq!(signature.len(), 512);
        let public = VerifyingKey::from_pkcs1_der(key.public_key_der()).unwrap();
        let raw = hex::decode(&signature).unwrap();
        assert!(public.verify(b"string to sign", &raw));
        assert!(!public.verify(b"string to sigN", &raw));
        // Deterministic: PKCS#1 v1.5 signing has no randomness.
        assert_eq!(key.sign_hex(b"string to sign").unwrap(), signature);
        let pem = key.to_pkcs1_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let again = SigningKey::from_pkcs1_pem(&pem).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
        let debug = format!("{key:?}");
        assert!(debug.contains(key.fingerprint()) && !debug.contains("PRIVATE"));
    }

    #[test]
    fn test_subject_public_key_info_is_refused() {
        // The AWS CLI loads PKCS#1 only; a SubjectPublicKeyInfo key must fail the same way here.
        use rsa::pkcs8::EncodePublicKey as _;
        let key = SigningKey::generate().unwrap();
        let spki = key.private.to_public_key().to_public_key_der().unwrap();
        assert!(VerifyingKey::from_pkcs1_der(spki.as_bytes()).is_err());
        assert!(VerifyingKey::from_pkcs1_der(key.public_key_der()).is_ok());
    }
}
