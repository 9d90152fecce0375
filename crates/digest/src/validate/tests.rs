#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Duration, TimeZone as _, Utc};

use super::*;
use crate::document::{
    DigestDocument, DigestLogFile, PreviousDigest, SignedDigest, digest_file_key, gzip,
};
use crate::keys::SigningKey;

const BUCKET: &str = "trail-bucket";
const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/audit";

/// Two keys, made once: generating RSA keys is slow in debug builds.
fn keys() -> &'static [SigningKey; 2] {
    static KEYS: OnceLock<[SigningKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        ]
    })
}

#[derive(Default)]
struct MemorySource {
    objects: Mutex<BTreeMap<(String, String), StoredObject>>,
    public_keys: Vec<PublicKeyEntry>,
}

impl MemorySource {
    fn put(&self, bucket: &str, key: &str, body: Vec<u8>, metadata: BTreeMap<String, String>) {
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), StoredObject { body, metadata });
    }
    fn remove(&self, key: &str) {
        self.objects
            .lock()
            .unwrap()
            .remove(&(BUCKET.to_owned(), key.to_owned()))
            .unwrap();
    }
    fn edit(&self, key: &str, f: impl FnOnce(&mut StoredObject)) {
        let mut objects = self.objects.lock().unwrap();
        f(objects
            .get_mut(&(BUCKET.to_owned(), key.to_owned()))
            .unwrap());
    }
}

impl ValidationSource for MemorySource {
    fn trail(&self, trail_arn: &str) -> Result<TrailLocation, SourceError> {
        if trail_arn != ARN {
            return Err(SourceError::Fatal(format!(
                "A trail could not be found for {trail_arn}"
            )));
        }
        Ok(TrailLocation {
            bucket: BUCKET.into(),
            prefix: Some("pfx".into()),
            is_organization_trail: false,
        })
    }
    fn organization_id(&self) -> Result<String, SourceError> {
        Err(SourceError::Fatal("not an organization".into()))
    }
    fn public_keys(
        &self,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> Result<Vec<PublicKeyEntry>, SourceError> {
        Ok(self.public_keys.clone())
    }
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), SourceError> {
        let objects = self.objects.lock().unwrap();
        for (b, k) in objects.keys() {
            if b == bucket && k.as_str() > marker && k.starts_with(prefix) && !visit(k) {
                break;
            }
        }
        Ok(())
    }
    fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, SourceError> {
        self.objects
            .lock()
            .unwrap()
            .get(&(bucket.into(), key.into()))
            .cloned()
            .ok_or(SourceError::NoSuchKey)
    }
    fn open(&self, bucket: &str, key: &str) -> Result<Box<dyn BufRead + Send + '_>, SourceError> {
        let object = self.get(bucket, key)?;
        Ok(Box::new(std::io::Cursor::new(object.body)))
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap()
}

fn log_key(at: DateTime<Utc>, n: usize) -> String {
    format!(
        "pfx/AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{}/{ACCOUNT}_CloudTrail_{REGION}_{}_UNIQUE{n:010}.json.gz",
        at.format("%Y/%m/%d"),
        at.format("%Y%m%dT%H%MZ")
    )
}

/// A chain of `hours` hourly digests with two log files each; the key changes
/// half way. Returns the source and the digest keys, oldest first.
fn chain(hours: usize) -> (MemorySource, Vec<String>) {
    chain_with(hours, |_, _| {})
}

/// [`chain`], letting `alter(hour, document)` change each digest before it is signed.
fn chain_with(
    hours: usize,
    alter: impl Fn(usize, &mut DigestDocument),
) -> (MemorySource, Vec<String>) {
    let keys = keys();
    let source = MemorySource {
        public_keys: keys
            .iter()
            .map(|k| PublicKeyEntry {
                fingerprint: k.fingerprint().to_owned(),
                value: base64::engine::general_purpose::STANDARD.encode(k.public_key_der()),
            })
            .collect(),
        ..Default::default()
    };
    let mut previous: Option<PreviousDigest> = None;
    let mut digest_keys = Vec::new();
    for h in 0..hours {
        let start = t0() + Duration::hours(h as i64);
        let end = start + Duration::hours(1);
        let mut files = Vec::new();
        for n in 0..2 {
            let at = start + Duration::minutes(10 + 20 * n as i64);
            let key = log_key(at, h * 2 + n);
            let body = format!("{{\"Records\":[{{\"n\":{}}}]}}", h * 2 + n).into_bytes();
            files.push(DigestLogFile {
                s3_bucket: BUCKET.into(),
                s3_object: key.clone(),
                hash_value: sha256_hex(&body),
                newest_event_time: Some(crate::document::format_time(at)),
                oldest_event_time: Some(crate::document::format_time(at)),
            });
            source.put(BUCKET, &key, gzip(&body), BTreeMap::new());
        }
        let signer = &keys[usize::from(h >= hours / 2)];
        let key = digest_file_key(Some("pfx"), None, ACCOUNT, REGION, "audit", REGION, end);
        let mut document = DigestDocument {
            aws_account_id: ACCOUNT.into(),
            digest_start_time: start,
            digest_end_time: end,
            digest_s3_bucket: BUCKET.into(),
            digest_s3_object: key.clone(),
            public_key_fingerprint: signer.fingerprint().to_owned(),
            previous: previous.clone(),
            log_files: files,
        };
        alter(h, &mut document);
        let signed = SignedDigest::sign(&document, signer).unwrap();
        source.put(BUCKET, &key, gzip(&signed.body), signed.metadata());
        previous = Some(PreviousDigest {
            s3_bucket: BUCKET.into(),
            s3_object: key.clone(),
            hash_value: signed.body_sha256.clone(),
            signature: signed.signature.clone(),
        });
        digest_keys.push(key);
    }
    (source, digest_keys)
}

fn options(end: DateTime<Utc>) -> ValidateOptions {
    ValidateOptions {
        trail_arn: ARN.into(),
        start: t0(),
        end,
        s3_bucket: None,
        s3_prefix: None,
        account_id: None,
        source_region: REGION.into(),
        threads: 3,
        chain_checks: true,
    }
}

fn run(source: &MemorySource, end: DateTime<Utc>, verbose: bool) -> (String, String, i32, Report) {
    let report = validate(source, &options(end), &NoProgress);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    report.write_text(verbose, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        report.exit_code(),
        report,
    )
}

#[test]
fn test_a_sound_chain_prints_what_the_aws_cli_prints() {
    let (source, keys) = chain(4);
    let (out, err, code, _) = run(&source, t0() + Duration::hours(4), true);
    assert_eq!(err, "");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "Validating log files for trail {ARN} between 2026-05-01T10:00:00Z and 2026-05-01T14:00:00Z"
        )
    );
    // Newest digest first, each followed by its log files in array order.
    assert_eq!(
        lines[2],
        format!("Digest file\ts3://{BUCKET}/{}\tvalid", keys[3])
    );
    assert!(lines[3].starts_with("Log file\ts3://trail-bucket/pfx/AWSLogs/111122223333/CloudTrail/us-east-1/2026/05/01/111122223333_CloudTrail_us-east-1_20260501T1310Z"));
    assert!(out.ends_with(
        "\nResults requested for 2026-05-01T10:00:00Z to 2026-05-01T14:00:00Z\nResults found for 2026-05-01T10:00:00Z to 2026-05-01T14:00:00Z:\n\n4/4 digest files valid\n8/8 log files valid\n"
    ));
    let (quiet, _, _, _) = run(&source, t0() + Duration::hours(4), false);
    assert_eq!(
        quiet,
        format!(
            "Validating log files for trail {ARN} between 2026-05-01T10:00:00Z and 2026-05-01T14:00:00Z\n\nResults requested for 2026-05-01T10:00:00Z to 2026-05-01T14:00:00Z\nResults found for 2026-05-01T10:00:00Z to 2026-05-01T14:00:00Z:\n\n4/4 digest files valid\n8/8 log files valid\n"
        )
    );
}

#[test]
fn test_tampering_is_reported_file_by_file() {
    let (source, keys) = chain(5);
    let end = t0() + Duration::hours(5);
    // A log file edited.
    let first_log = log_key(t0() + Duration::minutes(10), 0);
    source.edit(&first_log, |o| {
        o.body = gzip(b"{\"Records\":[{\"n\":999}]}")
    });
    // A digest's signature replaced by another digest's.
    let other_signature = source.get(BUCKET, &keys[0]).unwrap().metadata["signature"].clone();
    source.edit(&keys[3], |o| {
        o.metadata.insert("signature".into(), other_signature);
    });
    let (_, err, code, report) = run(&source, end, false);
    assert_eq!(code, 1);
    assert!(err.contains(&format!(
        "Log file\ts3://{BUCKET}/{first_log}\tINVALID: hash value doesn't match\n\n"
    )));
    assert!(err.contains(&format!(
        "Digest file\ts3://{BUCKET}/{}\tINVALID: signature verification failed\n\n",
        keys[3]
    )));
    let summary = report.summary();
    assert_eq!((summary.valid_digests, summary.invalid_digests), (4, 1));
    // Digest 3 is invalid, so the walk goes on from the listing (digest 2);
    // its two log files are never checked, as with the AWS CLI.
    assert_eq!((summary.valid_logs, summary.invalid_logs), (7, 1));
}

#[test]
fn test_two_deleted_digests_in_a_row_are_counted_by_the_chain_check() {
    let (source, keys) = chain(6);
    source.remove(&keys[3]);
    source.remove(&keys[2]);
    let (_, err, code, report) = run(&source, t0() + Duration::hours(6), false);
    assert_eq!(code, 1);
    // The AWS CLI's own lines name only the digest the chain points at.
    assert!(err.contains(&format!(
        "Digest file\ts3://{BUCKET}/{}\tINVALID: not found\n\n",
        keys[3]
    )));
    assert!(!err.contains(&format!("{}\tINVALID: not found", keys[2])));
    let broken: Vec<_> = report
        .findings()
        .iter()
        .filter(|f| matches!(f, ChainFinding::Broken { .. }))
        .collect();
    assert_eq!(broken.len(), 1, "{err}");
    let line = broken[0].line();
    assert!(
        line.contains("spans 2 digest periods, so 1 more digest file may have been deleted"),
        "{line}"
    );
    // The log files the two digests listed are now listed by none.
    let unlisted = report
        .findings()
        .iter()
        .filter(|f| matches!(f, ChainFinding::Unlisted { .. }))
        .count();
    assert_eq!(unlisted, 4, "{err}");
}

#[test]
fn test_one_deleted_digest_is_one_period() {
    let (source, keys) = chain(4);
    source.remove(&keys[2]);
    let (_, _, _, report) = run(&source, t0() + Duration::hours(4), false);
    let line = report
        .findings()
        .iter()
        .find(|f| matches!(f, ChainFinding::Broken { .. }))
        .unwrap()
        .line();
    assert!(
        line.contains("spans 1 digest period") && !line.contains("more digest"),
        "{line}"
    );
}

#[test]
fn test_a_forged_log_file_is_unlisted() {
    let (source, _) = chain(3);
    let forged = log_key(t0() + Duration::minutes(75), 77);
    source.put(BUCKET, &forged, gzip(b"{\"Records\":[]}"), BTreeMap::new());
    let (_, err, code, report) = run(&source, t0() + Duration::hours(3), false);
    assert_eq!(code, 1);
    assert_eq!(report.summary().invalid_logs, 0);
    assert_eq!(
        report.findings(),
        &[ChainFinding::Unlisted {
            bucket: BUCKET.into(),
            key: forged.clone()
        }]
    );
    assert!(err.contains(&format!(
        "Chain check\ts3://{BUCKET}/{forged}\tINVALID: log file not listed in any valid digest"
    )));
}

#[test]
fn test_errors_and_edge_cases_of_the_walk() {
    let (source, keys) = chain(3);
    // A digest moved to another key, and one that is not gzip.
    let moved = keys[1].replace("20260501T120000Z", "20260501T120001Z");
    let object = source.get(BUCKET, &keys[1]).unwrap();
    source.remove(&keys[1]);
    source.put(BUCKET, &moved, object.body, object.metadata);
    source.edit(&keys[0], |o| o.body = b"garbage".to_vec());
    let (_, err, code, _) = run(&source, t0() + Duration::hours(3), false);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "Digest file\ts3://{BUCKET}/{}\tINVALID: not found",
            keys[1]
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Digest file\ts3://{BUCKET}/{}\tINVALID: invalid format",
            keys[0]
        )),
        "{err}"
    );

    // No digest in range at all.
    let (out, _, code, _) = run(
        &source,
        t0() - Duration::hours(5) + Duration::hours(1),
        false,
    );
    let _ = out;
    assert_eq!(code, 255, "start after end is fatal");
    let mut early = options(t0() + Duration::hours(3));
    early.start = t0() + Duration::hours(10);
    early.end = t0() + Duration::hours(11);
    let report = validate(&source, &early, &NoProgress);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    report.write_text(false, &mut out, &mut err).unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("No digests found\n")
    );
    assert_eq!(report.exit_code(), 0);

    // Unknown trail and bad ARNs end the run.
    let mut unknown = options(t0());
    unknown.trail_arn = "arn:aws:cloudtrail:us-east-1:111122223333:trail/other".into();
    let report = validate(&source, &unknown, &NoProgress);
    assert_eq!(report.exit_code(), 255);
    assert_eq!(
        report.fatal(),
        Some(
            "A trail could not be found for arn:aws:cloudtrail:us-east-1:111122223333:trail/other"
        )
    );
    assert!(!arn_is_valid("arn:aws:cloudtrail:us-east-1:12345:trail/x"));
    assert!(arn_is_valid(ARN));
}

#[test]
fn test_cli_times_replace_the_offset() {
    assert_eq!(
        parse_cli_time("2026-05-01T10:00:00+02:00").unwrap(),
        Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap()
    );
    assert_eq!(
        parse_cli_time("2026-05-01").unwrap(),
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(
        parse_cli_time("20260501T101728Z").unwrap(),
        Utc.with_ymd_and_hms(2026, 5, 1, 10, 17, 28).unwrap()
    );
    assert!(parse_cli_time("yesterday").is_err());
}

#[test]
fn test_links_the_aws_cli_does_not_check() {
    // Digest 2 is validly signed but names digest 1 with a wrong hash and a
    // wrong signature, and starts a minute late.
    let (source, keys) = chain_with(4, |h, d| {
        if h == 2 {
            let previous = d.previous.as_mut().unwrap();
            previous.hash_value = "0".repeat(64);
            previous.signature = "ab".repeat(256);
            d.digest_start_time += Duration::minutes(1);
        }
    });
    let (out, err, code, report) = run(&source, t0() + Duration::hours(4), false);
    // The AWS CLI's own verdicts: everything valid.
    assert!(
        out.contains("4/4 digest files valid\n8/8 log files valid"),
        "{out}"
    );
    assert_eq!(code, 1, "the chain checks fail the run");
    let expected = [
        ChainFinding::PreviousHashMismatch {
            bucket: BUCKET.into(),
            key: keys[2].clone(),
            previous_key: keys[1].clone(),
        },
        ChainFinding::PreviousSignatureMismatch {
            bucket: BUCKET.into(),
            key: keys[2].clone(),
            previous_key: keys[1].clone(),
        },
        ChainFinding::Discontinuous {
            bucket: BUCKET.into(),
            key: keys[2].clone(),
            previous_key: keys[1].clone(),
            previous_end: t0() + Duration::hours(2),
            start: t0() + Duration::hours(2) + Duration::minutes(1),
        },
    ];
    assert_eq!(report.findings(), &expected[..], "{err}");
    for finding in &expected {
        assert!(err.contains(&format!("{}\n\n", finding.line())), "{err}");
    }
    // Without the extra checks the run is the AWS CLI's, exit status included.
    let mut plain = options(t0() + Duration::hours(4));
    plain.chain_checks = false;
    assert_eq!(validate(&source, &plain, &NoProgress).exit_code(), 0);
}
