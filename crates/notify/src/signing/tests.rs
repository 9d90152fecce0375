use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

use chrono::TimeZone as _;

use super::*;
use crate::message::{SnsMessage, string_to_sign, subscribe_url, unsubscribe_url};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:MyTopic";
const SUB: &str = "arn:aws:sns:us-east-1:123456789012:MyTopic:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55";
const CERT_URL: &str = "https://cairn.example.com/SimpleNotificationService-cairn.pem";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 13, 40, 0).unwrap()
}

/// One key for the tests that do not test persistence: RSA generation is slow.
fn shared() -> &'static (tempfile::TempDir, SigningKey) {
    static KEY: OnceLock<(tempfile::TempDir, SigningKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::open(&dir.path().join("keys"), now()).unwrap();
        (dir, key)
    })
}

fn key() -> &'static SigningKey {
    &shared().1
}

fn notification(version: SignatureVersion, subject: Option<&str>) -> SnsMessage {
    let mut m = SnsMessage::notification(
        "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        TOPIC,
        subject,
        "Hello, world ✓\n{\"nested\":\"json\"}",
        now(),
        &unsubscribe_url("https://cairn.example.com", SUB),
        BTreeMap::new(),
        version,
        CERT_URL,
    );
    m.sign(key()).unwrap();
    m
}

fn confirmation(version: SignatureVersion) -> SnsMessage {
    let token = "ab".repeat(128);
    let mut m = SnsMessage::subscription_confirmation(
        "47138184-6831-46b8-8f7c-afc488602d7d",
        TOPIC,
        &token,
        &subscribe_url("https://cairn.example.com", TOPIC, &token),
        now(),
        version,
        CERT_URL,
    );
    m.sign(key()).unwrap();
    m
}

#[test]
fn test_sign_verify_round_trip_v1_and_v2() {
    let pem = key().certificate_pem();
    for version in [SignatureVersion::V1, SignatureVersion::V2] {
        for m in [
            notification(version, Some("Subject line")),
            notification(version, None),
            confirmation(version),
        ] {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&m.signature)
                .unwrap();
            assert_eq!(raw.len(), 256, "RSA 2048 signatures are 256 bytes");
            assert_eq!(verify_message(&m.to_json(), pem).unwrap(), m.message_type);
            assert_eq!(
                verify_message(&m.to_json_line(), pem).unwrap(),
                m.message_type
            );
        }
    }
    // The two versions hash differently, so their signatures differ.
    assert_ne!(
        notification(SignatureVersion::V1, None).signature,
        notification(SignatureVersion::V2, None).signature
    );
}

#[test]
fn test_tampered_messages_fail() {
    let pem = key().certificate_pem();
    let good = notification(SignatureVersion::V2, Some("Subject line"));
    let edits: Vec<fn(&mut SnsMessage)> = vec![
        |m| m.message.push('!'),
        |m| m.subject = Some("Other".to_owned()),
        |m| m.subject = None,
        |m| m.topic_arn = "arn:aws:sns:us-east-1:123456789012:Other".to_owned(),
        |m| m.message_id = "00000000-0000-4000-8000-000000000000".to_owned(),
        |m| m.timestamp += chrono::Duration::milliseconds(1),
        // Claiming the other hash breaks the signature too.
        |m| m.signature_version = SignatureVersion::V1,
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut m = good.clone();
        edit(&mut m);
        let e = verify_message(&m.to_json(), pem).unwrap_err();
        assert!(matches!(e, Error::Verify(_)), "edit {i}: {e}");
    }
    // Fields outside the signature may change (SNS signs none of them).
    let mut m = good.clone();
    m.unsubscribe_url = Some("https://elsewhere".to_owned());
    verify_message(&m.to_json(), pem).unwrap();

    let mut c = confirmation(SignatureVersion::V1);
    c.token = Some("cd".repeat(128));
    assert!(verify_message(&c.to_json(), pem).is_err());
    let mut c = confirmation(SignatureVersion::V1);
    c.subscribe_url = Some("https://evil.example.com/".to_owned());
    assert!(verify_message(&c.to_json(), pem).is_err());

    // Garbage in, verification errors out.
    for body in [
        "",
        "[]",
        "{}",
        r#"{"Type":"Notification","SignatureVersion":"1"}"#,
    ] {
        assert!(
            matches!(verify_message(body, pem), Err(Error::Verify(_))),
            "{body}"
        );
    }
    let mut bad_sig = good.clone();
    bad_sig.signature = "not base64!".to_owned();
    assert!(verify_message(&bad_sig.to_json(), pem).is_err());
    assert!(verify_message(&good.to_json(), "not a certificate").is_err());
}

#[test]
fn test_other_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let other = SigningKey::open(dir.path(), now()).unwrap();
    let m = notification(SignatureVersion::V1, None);
    assert!(verify_message(&m.to_json(), other.certificate_pem()).is_err());
    verify_message(&m.to_json(), key().certificate_pem()).unwrap();
}

#[test]
fn test_key_persists_across_reopen() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("sns");
    let first = SigningKey::open(&dir, now()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(CERT_FILE)), 0o644);
    let key_pem = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
    assert!(key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    assert!(!format!("{first:?}").contains("PRIVATE"));

    // Reopened later: the same key and the same certificate.
    let again = SigningKey::open(&dir, now() + chrono::Duration::days(30)).unwrap();
    assert_eq!(again.public_key(), first.public_key());
    assert_eq!(again.certificate_pem(), first.certificate_pem());
    assert_eq!(again.certificate_file_name(), first.certificate_file_name());
    assert_eq!(
        std::fs::read_to_string(dir.join(KEY_FILE)).unwrap(),
        key_pem
    );
    let m = {
        let mut m = confirmation(SignatureVersion::V2);
        m.sign(&again).unwrap();
        m
    };
    verify_message(&m.to_json(), first.certificate_pem()).unwrap();

    // A lost certificate is reissued for the same key.
    std::fs::remove_file(dir.join(CERT_FILE)).unwrap();
    let reissued = SigningKey::open(&dir, now()).unwrap();
    assert_ne!(reissued.certificate_pem(), first.certificate_pem());
    assert_ne!(
        reissued.certificate_file_name(),
        first.certificate_file_name()
    );
    verify_message(&m.to_json(), reissued.certificate_pem()).unwrap();

    // So is an expired one.
    let late = first.certificate_not_after() + chrono::Duration::days(1);
    let renewed = SigningKey::open(&dir, late).unwrap();
    assert!(renewed.certificate_not_after() > late);
    assert_eq!(renewed.public_key(), first.public_key());

    // And one for another key (a copied-in file).
    std::fs::write(dir.join(CERT_FILE), key().certificate_pem()).unwrap();
    let fixed = SigningKey::open(&dir, now()).unwrap();
    assert_ne!(fixed.certificate_pem(), key().certificate_pem());
    verify_message(&m.to_json(), fixed.certificate_pem()).unwrap();

    // A corrupt key is an error, never silently replaced.
    std::fs::write(dir.join(KEY_FILE), "garbage").unwrap();
    assert!(matches!(SigningKey::open(&dir, now()), Err(Error::Key(_))));
}

#[test]
fn test_existing_key_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    assert!(write_atomic(&path, b"first", 0o600, Existing::Keep).unwrap());
    assert!(!write_atomic(&path, b"second", 0o600, Existing::Keep).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    assert!(write_atomic(&path, b"third", 0o644, Existing::Replace).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), b"third");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn test_loose_directory_is_tightened() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    create_private_dir(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn test_certificate_contents() {
    let pem = key().certificate_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    let cert = Certificate::from_pem(pem).unwrap();
    let tbs = cert.tbs_certificate();
    assert_eq!(
        tbs.subject().to_string(),
        "CN=Cairn SNS message signing,O=Cairn"
    );
    assert_eq!(tbs.issuer(), tbs.subject());
    let not_before = DateTime::<Utc>::from(tbs.validity().not_before.to_system_time());
    assert_eq!(not_before, now() - chrono::Duration::hours(24));
    assert_eq!(
        key().certificate_not_after(),
        now() + chrono::Duration::days(CERT_DAYS)
    );
    let basic = tbs.get_extension::<BasicConstraints>().unwrap().unwrap();
    assert!(!basic.1.ca);
    let name = key().certificate_file_name();
    assert!(name.starts_with("SimpleNotificationService-") && name.ends_with(".pem"));
    assert_eq!(
        name.len(),
        "SimpleNotificationService-".len() + 32 + ".pem".len()
    );
}

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// openssl reads the certificate and verifies both signature versions with it.
#[test]
fn test_openssl_reads_certificate_and_verifies() {
    if !have("openssl", &["version"]) {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, key().certificate_pem()).unwrap();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).unwrap();
    // Shown with --nocapture, for a reader checking by eye.
    eprintln!("{text}");
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    let public = dir.path().join("pub.pem");
    let out = Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&public, out.stdout).unwrap();
    for (version, digest) in [
        (SignatureVersion::V1, "-sha1"),
        (SignatureVersion::V2, "-sha256"),
    ] {
        let m = notification(version, Some("Subject line"));
        let data = dir.path().join("string.txt");
        let sig = dir.path().join("sig.bin");
        std::fs::write(&data, string_to_sign(&m)).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&m.signature)
            .unwrap();
        std::fs::write(&sig, &raw).unwrap();
        let verify = |data: &Path| {
            Command::new("openssl")
                .args(["dgst", digest, "-verify"])
                .arg(&public)
                .arg("-signature")
                .arg(&sig)
                .arg(data)
                .output()
                .unwrap()
        };
        let ok = verify(&data);
        assert!(ok.status.success(), "{version:?}: {ok:?}");
        std::fs::write(&data, string_to_sign(&m) + "x").unwrap();
        assert!(
            !verify(&data).status.success(),
            "a changed string must fail"
        );
    }
}

/// Python's `cryptography`, an independent implementation, loads the
/// certificate and verifies the signatures over the documents' own fields.
#[test]
fn test_python_cryptography_verifies() {
    if !have("python3", &["-c", "import cryptography"]) {
        eprintln!("SKIPPED: python3 with cryptography is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, key().certificate_pem()).unwrap();
    let script = r#"
import base64, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
assert cert.public_key().key_size == 2048
if hasattr(cert, "verify_directly_issued_by"):
    cert.verify_directly_issued_by(cert)  # the self-signature holds
results = []
for path in sys.argv[2:]:
    doc = json.load(open(path))
    if doc["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{doc[n]}\n" for n in names if n in doc)
    algorithm = hashes.SHA1() if doc["SignatureVersion"] == "1" else hashes.SHA256()
    try:
        cert.public_key().verify(base64.b64decode(doc["Signature"]), text.encode(), padding.PKCS1v15(), algorithm)
        results.append("ok")
    except Exception:
        results.append("bad")
print(" ".join(results))
"#;
    let script_path = dir.path().join("verify.py");
    std::fs::write(&script_path, script).unwrap();
    let mut docs = vec![
        notification(SignatureVersion::V1, Some("Subject line")),
        notification(SignatureVersion::V2, None),
        confirmation(SignatureVersion::V1),
        confirmation(SignatureVersion::V2),
    ];
    let mut unsubscribe = SnsMessage::unsubscribe_confirmation(
        "47138184-6831-46b8-8f7c-afc488602d7d",
        TOPIC,
        SUB,
        "token",
        &subscribe_url("https://cairn.example.com", TOPIC, "token"),
        now(),
        SignatureVersion::V2,
        CERT_URL,
    );
    unsubscribe.sign(key()).unwrap();
    docs.push(unsubscribe);
    let mut tampered = notification(SignatureVersion::V2, None);
    tampered.message = "changed".to_owned();
    docs.push(tampered);
    let mut args = vec![cert.clone()];
    for (i, m) in docs.iter().enumerate() {
        let p = dir.path().join(format!("{i}.json"));
        std::fs::write(&p, m.to_json()).unwrap();
        args.push(p);
    }
    let out = Command::new("python3")
        .arg(&script_path)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok ok ok ok ok bad"
    );
}
