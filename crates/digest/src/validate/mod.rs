//! The chain walk of `aws cloudtrail validate-logs`, step for step, plus the
//! checks it skips.
//!
//! [`validate`] reproduces `awscli/customizations/cloudtrail/validation.py`:
//! the same listing (marker one minute before the start, stop one hour after
//! the end), the same newest-first walk along `previousDigestS3Object`, the
//! same per-file verdicts in the same order, the same gap, missing and
//! invalid reports, the same exit status. Where it reads a bucket, a trail or
//! public keys it asks a [`ValidationSource`], so the same walk runs against a
//! live server and against a directory of exported files.
//!
//! Log files are fetched, gunzipped and hashed on a pool of threads while the
//! walk goes on; their verdicts are put back in the AWS CLI's order.
//!
//! What the AWS CLI does not check is reported separately as
//! [`ChainFinding`]s, so the per-file verdicts stay comparable line for line:
//! `previousDigestHashValue` and `previousDigestSignature` against the digest
//! they name, continuity of digest times, breaks in the chain that may hide
//! more than the one missing digest the AWS CLI names (aws-cli issue 7054),
//! and log files in the trail's folders that no valid digest lists.

mod logs;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use base64::Engine as _;
use cairn_model::layout::account_root;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use serde_json::Value;

pub use logs::{LogVerdict, check_log, gunzip_digest};
pub use report::{ChainFinding, DigestVerdict, Entry, LogCheck, Report, Summary};

use crate::document::sha256_hex;
use crate::keys::VerifyingKey;

/// The largest digest file read (real ones list at most a few thousand log files).
pub const MAX_DIGEST_BYTES: u64 = 256 * 1024 * 1024;
/// The most days of log folders listed by the coverage check.
const MAX_COVERAGE_DAYS: i64 = 400;

/// A failure of the place the files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// The object does not exist (S3 `NoSuchKey`): a verdict, not a failure.
    NoSuchKey,
    /// Anything else: the run stops, as the AWS CLI stops on a `ClientError`
    /// other than `NoSuchKey`. The text is printed as the reason.
    Fatal(String),
}

/// Where the trail's bucket is, as DescribeTrails tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailLocation {
    /// `S3BucketName`.
    pub bucket: String,
    /// `S3KeyPrefix`.
    pub prefix: Option<String>,
    /// `IsOrganizationTrail`.
    pub is_organization_trail: bool,
}

/// One entry of ListPublicKeys' `PublicKeyList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyEntry {
    /// `Fingerprint`.
    pub fingerprint: String,
    /// `Value`: base64 of the PKCS#1 DER.
    pub value: String,
}

/// An object's bytes and user metadata (names without `x-amz-meta-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredObject {
    /// The stored bytes.
    pub body: Vec<u8>,
    /// The user metadata.
    pub metadata: BTreeMap<String, String>,
}

/// What the walk reads: CloudTrail, Organizations and S3, or their offline stand-ins.
pub trait ValidationSource: Sync {
    /// DescribeTrails, the entry whose ARN is `trail_arn`.
    fn trail(&self, trail_arn: &str) -> Result<TrailLocation, SourceError>;
    /// DescribeOrganization's `Organization.Id`.
    fn organization_id(&self) -> Result<String, SourceError>;
    /// ListPublicKeys for `[start, end]`.
    fn public_keys(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<PublicKeyEntry>, SourceError>;
    /// ListObjects: the keys after `marker` that start with `prefix`, in
    /// ascending order, each given to `visit` until it returns `false`.
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), SourceError>;
    /// GetObject of a digest file, whole, with its metadata.
    fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, SourceError>;
    /// GetObject of a log file, as a reader of its stored (gzip) bytes.
    fn open(&self, bucket: &str, key: &str) -> Result<Box<dyn BufRead + Send + '_>, SourceError>;
}

/// Hooks for a progress display; every method has an empty default.
pub trait ValidationProgress: Sync {
    /// A digest file was read.
    fn digest_checked(&self) {}
    /// A log file was queued for checking.
    fn log_queued(&self) {}
    /// A log file was checked.
    fn log_checked(&self) {}
}

/// No progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl ValidationProgress for NoProgress {}

/// The arguments of `validate-logs`.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// `--trail-arn`.
    pub trail_arn: String,
    /// `--start-time`, already read as UTC.
    pub start: DateTime<Utc>,
    /// `--end-time`, or now.
    pub end: DateTime<Utc>,
    /// `--s3-bucket`: skips DescribeTrails (and so organization detection).
    pub s3_bucket: Option<String>,
    /// `--s3-prefix` (used only with `--s3-bucket`).
    pub s3_prefix: Option<String>,
    /// `--account-id`: required for organization trails.
    pub account_id: Option<String>,
    /// The region whose digests are walked (`--region`).
    pub source_region: String,
    /// Threads hashing log files (at least 1).
    pub threads: usize,
    /// Run the checks the AWS CLI skips ([`ChainFinding`]s).
    pub chain_checks: bool,
}

/// Reads a `--start-time`/`--end-time` value as `dateutil.parser.parse` and
/// the AWS CLI do for the usual forms: an offset, if any, is replaced by UTC,
/// not converted.
pub fn parse_cli_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    let unparsable = || format!("Unable to parse date value: {text}");
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(Utc.from_utc_datetime(&d.naive_local()));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.fZ",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%MZ",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y%m%dT%H%M%SZ",
        "%Y%m%dT%H%M%S",
        "%Y%m%dT%H%MZ",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(Utc.from_utc_datetime(&n));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::parse_from_str(t, format) {
            return Ok(Utc.from_utc_datetime(&d.naive_local()));
        }
    }
    for format in ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, format) {
            return Ok(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)));
        }
    }
    Err(unparsable())
}

/// `%Y%m%dT%H%M%SZ`, the date form of digest keys.
fn key_date_format(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// `%Y-%m-%dT%H:%M:%SZ`, the date form of the AWS CLI's output.
pub fn display_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn is_backfill_key(key: &str) -> bool {
    key.ends_with("_backfill.json.gz")
}

/// The 16-character date of a digest key (`key[-24:-8]`, or `key[-33:-17]`
/// for a backfill digest), by characters as Python slices.
fn key_date_text(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let (from_end, to_end) = if is_backfill_key(key) {
        (33, 17)
    } else {
        (24, 8)
    };
    let n = chars.len();
    let start = n.saturating_sub(from_end);
    let end = n.saturating_sub(to_end);
    chars[start.min(end)..end].iter().collect()
}

fn key_date(key: &str) -> Result<DateTime<Utc>, String> {
    parse_cli_time(&key_date_text(key))
}

/// Whether `key` names a digest of this trail, account and region
/// (validation.py's `_create_digest_key_regex`, written out).
struct DigestKeyPattern {
    root: String,
    file_start: String,
}

impl DigestKeyPattern {
    fn new(
        prefix: Option<&str>,
        org: Option<&str>,
        account: &str,
        region: &str,
        name: &str,
        home: &str,
    ) -> Self {
        let mut root = account_root(prefix, org, account);
        root.push_str(&format!("CloudTrail-Digest/{region}/"));
        Self {
            root,
            file_start: format!("{account}_CloudTrail-Digest_{region}_{name}_{home}_"),
        }
    }

    fn matches(&self, key: &str) -> bool {
        if key.contains('\n') {
            return false;
        }
        let Some(rest) = key.strip_prefix(&self.root) else {
            return false;
        };
        let mut parts = rest.splitn(4, '/');
        for _ in 0..3 {
            match parts.next() {
                Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => return false,
            }
        }
        let Some(file) = parts.next() else {
            return false;
        };
        let Some(tail) = file.strip_prefix(&self.file_start) else {
            return false;
        };
        tail.len() > ".json.gz".len() && tail.ends_with(".json.gz")
    }
}

/// A digest failure the walk reports and steps past (validation.py's `DigestError`
/// and the generic `Exception` branch, which share a message form).
struct DigestProblem(String);

/// A failure that ends the run (exit status 255).
struct Fatal(String);

/// A valid digest as the extra checks need it.
#[derive(Debug, Clone)]
struct SeenDigest {
    bucket: String,
    key: String,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    body_sha256: String,
    signature: String,
    previous_bucket: Option<String>,
    previous_key: Option<String>,
    previous_hash: Option<String>,
    previous_signature: Option<String>,
    log_keys: Vec<(String, String)>,
}

/// What happened at one step of the walk, for the extra checks.
#[derive(Debug, Clone)]
enum Step {
    Valid(usize),
    /// A digest named by a valid digest (or listed) was missing or invalid.
    Broken {
        bucket: String,
        key: String,
    },
    /// The AWS CLI's "No log files were delivered" gap.
    Gap,
}

/// The listing of one bucket, split as `load_all_digest_keys_in_range` splits it.
#[derive(Default)]
struct Listing {
    standard: Vec<String>,
    backfill: Vec<String>,
}

struct Walker<'a> {
    source: &'a dyn ValidationSource,
    progress: &'a dyn ValidationProgress,
    options: &'a ValidateOptions,
    account: String,
    trail_name: String,
    home_region: String,
    organization_id: Option<String>,
    cache: HashMap<(String, Option<String>, DateTime<Utc>), Listing>,
    entries: Vec<Entry>,
    seen: Vec<SeenDigest>,
    steps: Vec<Step>,
    jobs: mpsc::Sender<(usize, String, String, String)>,
    log_slots: Vec<(String, String)>,
}

/// Runs `validate-logs`: walks the chain of `options.source_region` and
/// checks every log file the valid digests list.
pub fn validate(
    source: &dyn ValidationSource,
    options: &ValidateOptions,
    progress: &dyn ValidationProgress,
) -> Report {
    let mut report = Report::new(options);
    let (jobs_tx, jobs_rx) = mpsc::channel::<(usize, String, String, String)>();
    let (results_tx, results_rx) = mpsc::channel::<(usize, LogVerdict)>();
    let jobs_rx = Mutex::new(jobs_rx);
    let first_fatal = AtomicUsize::new(usize::MAX);
    let threads = options.threads.max(1);

    let outcome = std::thread::scope(|scope| {
        for _ in 0..threads {
            let results_tx = results_tx.clone();
            let jobs_rx = &jobs_rx;
            let first_fatal = &first_fatal;
            scope.spawn(move || {
                loop {
                    let job = {
                        let guard = jobs_rx.lock().unwrap_or_else(|p| p.into_inner());
                        guard.recv()
                    };
                    let Ok((index, bucket, key, expected)) = job else {
                        break;
                    };
                    // Past a fatal failure nothing more is reported, so nothing more is read.
                    let verdict = if index > first_fatal.load(Ordering::Relaxed) {
                        LogVerdict::Fatal(String::new())
                    } else {
                        match source.open(&bucket, &key) {
                            Ok(reader) => check_log(reader, &expected),
                            Err(SourceError::NoSuchKey) => LogVerdict::NotFound,
                            Err(SourceError::Fatal(m)) => {
                                first_fatal.fetch_min(index, Ordering::Relaxed);
                                LogVerdict::Fatal(m)
                            }
                        }
                    };
                    progress.log_checked();
                    if results_tx.send((index, verdict)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(results_tx);
        let mut walker = Walker {
            source,
            progress,
            options,
            account: String::new(),
            trail_name: String::new(),
            home_region: String::new(),
            organization_id: None,
            cache: HashMap::new(),
            entries: Vec::new(),
            seen: Vec::new(),
            steps: Vec::new(),
            jobs: jobs_tx,
            log_slots: Vec::new(),
        };
        let walked = walker.run();
        let Walker {
            entries,
            seen,
            steps,
            jobs,
            log_slots,
            organization_id,
            account,
            ..
        } = walker;
        drop(jobs);
        let mut verdicts: Vec<Option<LogVerdict>> = vec![None; log_slots.len()];
        for (index, verdict) in results_rx.iter() {
            if let Some(slot) = verdicts.get_mut(index) {
                *slot = Some(verdict);
            }
        }
        (
            walked,
            entries,
            seen,
            steps,
            log_slots,
            verdicts,
            organization_id,
            account,
        )
    });
    let (walked, entries, seen, steps, log_slots, verdicts, organization_id, account) = outcome;
    let logs: Vec<LogCheck> = log_slots
        .into_iter()
        .zip(verdicts)
        .map(|((bucket, key), verdict)| LogCheck {
            bucket,
            key,
            verdict: verdict
                .unwrap_or_else(|| LogVerdict::Fatal("the log check did not finish".into())),
        })
        .collect();
    report.fill(entries, logs);
    if let Err(Fatal(message)) = walked {
        report.set_fatal(message);
    }
    if options.chain_checks && report.fatal().is_none() {
        let mut findings = link_findings(&seen, &steps);
        findings.extend(coverage_findings(
            source,
            options,
            organization_id.as_deref(),
            &account,
            &seen,
            &steps,
        ));
        report.set_findings(findings);
    }
    report
}

impl Walker<'_> {
    fn run(&mut self) -> Result<(), Fatal> {
        let options = self.options;
        let arn = &options.trail_arn;
        if !arn_is_valid(arn) {
            return Err(Fatal(format!("Invalid trail ARN provided: {arn}")));
        }
        if options.start > options.end {
            return Err(Fatal(
                "Invalid time range specified: start-time must occur before end-time".into(),
            ));
        }
        let (bucket, prefix) = match &options.s3_bucket {
            Some(bucket) => (bucket.clone(), options.s3_prefix.clone()),
            None => {
                let trail = self.source.trail(arn).map_err(fatal)?;
                if trail.is_organization_trail {
                    if options.account_id.as_deref().is_none_or(str::is_empty) {
                        return Err(Fatal(
                            "Missing required parameter for organization trail: '--account-id'"
                                .into(),
                        ));
                    }
                    self.organization_id = Some(self.source.organization_id().map_err(fatal)?);
                }
                (trail.bucket, trail.prefix)
            }
        };
        let fields: Vec<&str> = arn.split(':').collect();
        self.home_region = fields.get(3).copied().unwrap_or_default().to_owned();
        self.trail_name = arn.rsplit('/').next().unwrap_or_default().to_owned();
        self.account = match options.account_id.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => a.to_owned(),
            None => fields.get(4).copied().unwrap_or_default().to_owned(),
        };
        self.traverse(&bucket, prefix.as_deref(), false)?;
        self.traverse(&bucket, prefix.as_deref(), true)
    }

    fn listing(
        &mut self,
        bucket: &str,
        prefix: Option<&str>,
        end: DateTime<Utc>,
    ) -> Result<(String, Option<String>, DateTime<Utc>), Fatal> {
        let cache_key = (bucket.to_owned(), prefix.map(str::to_owned), end);
        if !self.cache.contains_key(&cache_key) {
            let options = self.options;
            let region = &options.source_region;
            let org = self.organization_id.as_deref();
            let marker_time = options.start - Duration::minutes(1);
            let marker = crate::document::digest_file_key(
                prefix,
                org,
                &self.account,
                region,
                &self.trail_name,
                &self.home_region,
                marker_time,
            );
            let list_prefix = crate::document::digest_prefix(prefix, org, &self.account, region);
            let pattern = DigestKeyPattern::new(
                prefix,
                org,
                &self.account,
                region,
                &self.trail_name,
                &self.home_region,
            );
            let target_start = key_date_format(options.start);
            let target_end = key_date_format(end + Duration::hours(1));
            let mut listing = Listing::default();
            self.source
                .list(bucket, &list_prefix, &marker, &mut |key| {
                    if !pattern.matches(key) {
                        return true;
                    }
                    let date = key_date_text(key);
                    if date > target_end {
                        return false;
                    }
                    if date < target_start {
                        return true;
                    }
                    if is_backfill_key(key) {
                        listing.backfill.push(key.to_owned());
                    } else {
                        listing.standard.push(key.to_owned());
                    }
                    true
                })
                .map_err(fatal)?;
            self.cache.insert(cache_key.clone(), listing);
        }
        Ok(cache_key)
    }

    fn keys_mut(
        &mut self,
        cache_key: &(String, Option<String>, DateTime<Utc>),
        backfill: bool,
    ) -> &mut Vec<String> {
        let listing = self.cache.entry(cache_key.clone()).or_default();
        if backfill {
            &mut listing.backfill
        } else {
            &mut listing.standard
        }
    }

    /// `_get_last_digest`: the newest key, or the newest one dated before `before`.
    fn last_digest(
        &mut self,
        cache_key: &(String, Option<String>, DateTime<Utc>),
        backfill: bool,
        before: Option<&str>,
    ) -> Result<Option<(String, DateTime<Utc>)>, Fatal> {
        let before_date = match before {
            Some(key) => Some(key_date(key).map_err(Fatal)?),
            None => None,
        };
        let keys = self.keys_mut(cache_key, backfill);
        while let Some(key) = keys.pop() {
            let date = key_date(&key).map_err(Fatal)?;
            match before_date {
                None => return Ok(Some((key, date))),
                Some(b) if date < b => return Ok(Some((key, date))),
                Some(_) => {}
            }
        }
        Ok(None)
    }

    fn public_keys(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<HashMap<String, PublicKeyEntry>, String> {
        let keys = self.source.public_keys(start, end).map_err(|e| match e {
            SourceError::NoSuchKey => "NoSuchKey".to_owned(),
            SourceError::Fatal(m) => m,
        })?;
        if keys.is_empty() {
            return Err(format!(
                "No public keys found between {} and {}",
                display_date(start),
                display_date(end)
            ));
        }
        Ok(keys
            .into_iter()
            .map(|k| (k.fingerprint.clone(), k))
            .collect())
    }

    fn traverse(
        &mut self,
        start_bucket: &str,
        prefix: Option<&str>,
        backfill: bool,
    ) -> Result<(), Fatal> {
        let options = self.options;
        let start = options.start;
        let mut bucket = start_bucket.to_owned();
        let mut cache_key = self.listing(&bucket, prefix, options.end)?;
        let mut public_keys = if backfill {
            HashMap::new()
        } else {
            self.public_keys(start, options.end + Duration::hours(2))
                .map_err(Fatal)?
        };
        let Some((first, first_date)) = self.last_digest(&cache_key, backfill, None)? else {
            return Ok(());
        };
        let mut key = Some(first);
        let mut last_start = first_date;
        while let Some(current) = key.take() {
            if start > last_start {
                break;
            }
            match self.load_digest(&mut public_keys, &bucket, &current, backfill) {
                Ok(loaded) => {
                    self.progress.digest_checked();
                    let digest_start = loaded
                        .json
                        .get("digestStartTime")
                        .map(python_str)
                        .unwrap_or_default();
                    let parsed_start = match parse_cli_time(&digest_start) {
                        Ok(t) => t,
                        Err(m) => {
                            let verdict = DigestVerdict::Invalid(format!(
                                "Digest file\ts3://{bucket}/{current}\tINVALID: {m}"
                            ));
                            key =
                                self.skip_broken(&cache_key, backfill, &bucket, &current, verdict)?;
                            continue;
                        }
                    };
                    last_start = parsed_start;
                    self.accept(&loaded, &bucket, &current, backfill);
                    let previous_bucket = loaded
                        .json
                        .get("previousDigestS3Bucket")
                        .and_then(Value::as_str);
                    let previous_key = loaded
                        .json
                        .get("previousDigestS3Object")
                        .and_then(Value::as_str);
                    match (previous_bucket, previous_key) {
                        (Some(pb), Some(pk)) => {
                            key = Some(pk.to_owned());
                            if pb != bucket {
                                bucket = pb.to_owned();
                                cache_key = self.listing(&bucket, prefix, loaded.end)?;
                            }
                        }
                        _ => {
                            let next = self.next_digest(&cache_key, backfill, &current)?;
                            if let Some((_, next_date)) = &next {
                                self.entries.push(Entry::Gap {
                                    backfill,
                                    from: *next_date,
                                    to: last_start,
                                });
                                self.steps.push(Step::Gap);
                            }
                            key = next.map(|(k, _)| k);
                        }
                    }
                }
                Err(LoadError::Missing) => {
                    self.progress.digest_checked();
                    key = self.skip_broken(
                        &cache_key,
                        backfill,
                        &bucket,
                        &current,
                        DigestVerdict::NotFound,
                    )?;
                }
                Err(LoadError::Invalid(DigestProblem(message))) => {
                    self.progress.digest_checked();
                    key = self.skip_broken(
                        &cache_key,
                        backfill,
                        &bucket,
                        &current,
                        DigestVerdict::Invalid(message),
                    )?;
                }
                Err(LoadError::Fatal(f)) => return Err(f),
            }
        }
        Ok(())
    }

    fn next_digest(
        &mut self,
        cache_key: &(String, Option<String>, DateTime<Utc>),
        backfill: bool,
        last_key: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, Fatal> {
        self.last_digest(cache_key, backfill, Some(last_key))
    }

    /// Reports a digest that is missing or invalid and finds the next older
    /// listed one, as `_find_next_digest` does after an error.
    fn skip_broken(
        &mut self,
        cache_key: &(String, Option<String>, DateTime<Utc>),
        backfill: bool,
        bucket: &str,
        key: &str,
        verdict: DigestVerdict,
    ) -> Result<Option<String>, Fatal> {
        self.entries.push(Entry::Digest {
            backfill,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            verdict,
        });
        self.steps.push(Step::Broken {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        });
        Ok(self.next_digest(cache_key, backfill, key)?.map(|(k, _)| k))
    }

    /// Records a valid digest and queues its log files.
    fn accept(&mut self, loaded: &LoadedDigest, bucket: &str, key: &str, backfill: bool) {
        let json = &loaded.json;
        let text = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
        self.entries.push(Entry::Digest {
            backfill,
            bucket: text("digestS3Bucket").unwrap_or_else(|| bucket.to_owned()),
            key: text("digestS3Object").unwrap_or_else(|| key.to_owned()),
            verdict: DigestVerdict::Valid {
                start: text("digestStartTime").and_then(|t| parse_cli_time(&t).ok()),
                end: Some(loaded.end),
            },
        });
        let mut log_keys = Vec::new();
        if let Some(files) = json.get("logFiles").and_then(Value::as_array) {
            for file in files {
                let field = |name: &str| file.get(name).map(python_str).unwrap_or_default();
                let (log_bucket, log_key, hash) =
                    (field("s3Bucket"), field("s3Object"), field("hashValue"));
                let index = self.log_slots.len();
                self.log_slots.push((log_bucket.clone(), log_key.clone()));
                log_keys.push((log_bucket.clone(), log_key.clone()));
                self.entries.push(Entry::Log(index));
                self.progress.log_queued();
                // The receiver lives until the walk ends.
                let _ = self.jobs.send((index, log_bucket, log_key, hash));
            }
        }
        self.seen.push(SeenDigest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            start: text("digestStartTime").and_then(|t| parse_cli_time(&t).ok()),
            end: Some(loaded.end),
            body_sha256: loaded.body_sha256.clone(),
            signature: loaded.signature.clone(),
            previous_bucket: text("previousDigestS3Bucket"),
            previous_key: text("previousDigestS3Object"),
            previous_hash: text("previousDigestHashValue"),
            previous_signature: text("previousDigestSignature"),
            log_keys,
        });
        self.steps.push(Step::Valid(self.seen.len() - 1));
    }

    /// `fetch_digest` and `_load_and_validate_digest`.
    fn load_digest(
        &self,
        public_keys: &mut HashMap<String, PublicKeyEntry>,
        bucket: &str,
        key: &str,
        backfill: bool,
    ) -> Result<LoadedDigest, LoadError> {
        let object = match self.source.get(bucket, key) {
            Ok(o) => o,
            Err(SourceError::NoSuchKey) => return Err(LoadError::Missing),
            Err(SourceError::Fatal(m)) => return Err(LoadError::Fatal(Fatal(m))),
        };
        let invalid = |what: &str| {
            LoadError::Invalid(DigestProblem(format!(
                "Digest file\ts3://{bucket}/{key}\tINVALID: {what}"
            )))
        };
        let inflated = gunzip_digest(&object.body, MAX_DIGEST_BYTES)
            .ok_or_else(|| invalid("invalid format"))?;
        let json: Value =
            serde_json::from_slice(&inflated).map_err(|_| invalid("invalid format"))?;
        if !json.is_object() {
            return Err(invalid("invalid format"));
        }
        let (Some(signature), Some(_)) = (
            object.metadata.get("signature"),
            object.metadata.get("signature-algorithm"),
        ) else {
            return Err(invalid("signature verification failed"));
        };
        let backfill_timestamp = if backfill {
            Some(
                object
                    .metadata
                    .get("backfill-generation-timestamp")
                    .ok_or_else(|| invalid("invalid format"))?
                    .clone(),
            )
        } else {
            None
        };
        for required in [
            "digestPublicKeyFingerprint",
            "digestS3Bucket",
            "digestS3Object",
            "previousDigestSignature",
            "digestEndTime",
            "digestStartTime",
        ] {
            if json.get(required).is_none() {
                return Err(invalid("invalid format"));
            }
        }
        if json.get("digestS3Bucket").and_then(Value::as_str) != Some(bucket)
            || json.get("digestS3Object").and_then(Value::as_str) != Some(key)
        {
            return Err(invalid("has been moved from its original location"));
        }
        let fingerprint = json
            .get("digestPublicKeyFingerprint")
            .map(python_str)
            .unwrap_or_default();
        if !public_keys.contains_key(&fingerprint)
            && let Some(ts) = &backfill_timestamp
        {
            let at = parse_cli_time(ts).map_err(|m| invalid(&m))?;
            let more = self
                .public_keys(at - Duration::hours(1), at + Duration::hours(1))
                .map_err(|m| invalid(&m))?;
            public_keys.extend(more);
        }
        let Some(public_key) = public_keys.get(&fingerprint) else {
            return Err(invalid(&format!(
                "public key not found in region {} for fingerprint {fingerprint}",
                self.home_region
            )));
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(public_key.value.trim())
            .map_err(|_| invalid("Incorrect padding"))?;
        let verifying = VerifyingKey::from_pkcs1_der(&der).map_err(|_| {
            invalid(&format!(
                "Unable to load PKCS #1 key with fingerprint {fingerprint}"
            ))
        })?;
        let body_sha256 = sha256_hex(&inflated);
        let previous_signature = match json.get("previousDigestSignature") {
            None | Some(Value::Null) => "null".to_owned(),
            Some(v) => python_str(v),
        };
        let to_sign = format!(
            "{}\n{}/{}\n{}\n{}",
            json.get("digestEndTime")
                .map(python_str)
                .unwrap_or_default(),
            bucket,
            key,
            body_sha256,
            previous_signature
        );
        if signature.len() % 2 == 1 {
            return Err(invalid("Odd-length string"));
        }
        let signature_bytes =
            hex::decode(signature).map_err(|_| invalid("Non-hexadecimal digit found"))?;
        if !verifying.verify(to_sign.as_bytes(), &signature_bytes) {
            return Err(invalid("signature verification failed"));
        }
        let end_text = json
            .get("digestEndTime")
            .map(python_str)
            .unwrap_or_default();
        let end = parse_cli_time(&end_text).map_err(|m| invalid(&m))?;
        Ok(LoadedDigest {
            json,
            end,
            body_sha256,
            signature: signature.clone(),
        })
    }
}

struct LoadedDigest {
    json: Value,
    end: DateTime<Utc>,
    body_sha256: String,
    signature: String,
}

enum LoadError {
    Missing,
    Invalid(DigestProblem),
    Fatal(Fatal),
}

fn fatal(e: SourceError) -> Fatal {
    match e {
        SourceError::NoSuchKey => Fatal(
            "An error occurred (NoSuchKey) when calling the GetObject operation: The specified key does not exist.".into(),
        ),
        SourceError::Fatal(m) => Fatal(m),
    }
}

/// `str()` of a JSON value as Python would print the decoded object (strings bare).
fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// `arn:.+:cloudtrail:.+:\d{12}:trail/.+` matched at the start, as `re.match` does
/// (`.` stops at a line break).
pub fn arn_is_valid(arn: &str) -> bool {
    let line = arn.split('\n').next().unwrap_or_default();
    let Some(after_arn) = line.strip_prefix("arn:") else {
        return false;
    };
    const SERVICE: &str = ":cloudtrail:";
    const TRAIL: &str = ":trail/";
    after_arn.match_indices(SERVICE).any(|(p, _)| {
        if p == 0 {
            return false;
        }
        let rest = &after_arn[p + SERVICE.len()..];
        rest.match_indices(TRAIL).any(|(t, _)| {
            let b = rest.as_bytes();
            t >= 14
                && b[t - 13] == b':'
                && b[t - 12..t].iter().all(u8::is_ascii_digit)
                && rest.len() > t + TRAIL.len()
        })
    })
}

/// The links between valid digests the AWS CLI does not check.
fn link_findings(seen: &[SeenDigest], steps: &[Step]) -> Vec<ChainFinding> {
    let mut findings = Vec::new();
    let by_location: HashMap<(&str, &str), usize> = seen
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.bucket.as_str(), d.key.as_str()), i))
        .collect();
    let mut periods: Vec<i64> = seen
        .iter()
        .filter_map(|d| Some((d.end? - d.start?).num_seconds()))
        .filter(|s| *s > 0)
        .collect();
    periods.sort_unstable();
    let typical = periods.get(periods.len() / 2).copied();

    for digest in seen {
        let (Some(pb), Some(pk)) = (&digest.previous_bucket, &digest.previous_key) else {
            continue;
        };
        let Some(&p) = by_location.get(&(pb.as_str(), pk.as_str())) else {
            continue;
        };
        let previous = &seen[p];
        if digest.previous_hash.as_deref() != Some(previous.body_sha256.as_str()) {
            findings.push(ChainFinding::PreviousHashMismatch {
                bucket: digest.bucket.clone(),
                key: digest.key.clone(),
                previous_key: previous.key.clone(),
            });
        }
        if digest.previous_signature.as_deref() != Some(previous.signature.as_str()) {
            findings.push(ChainFinding::PreviousSignatureMismatch {
                bucket: digest.bucket.clone(),
                key: digest.key.clone(),
                previous_key: previous.key.clone(),
            });
        }
        if let (Some(start), Some(end)) = (digest.start, previous.end)
            && start != end
        {
            findings.push(ChainFinding::Discontinuous {
                bucket: digest.bucket.clone(),
                key: digest.key.clone(),
                previous_key: previous.key.clone(),
                previous_end: end,
                start,
            });
        }
    }

    // A break: valid digest D names X, X is missing or invalid, and the walk
    // resumes at the next listed digest N. The AWS CLI names only X.
    let mut i = 0;
    while i < steps.len() {
        if let Step::Valid(d) = steps[i] {
            let mut j = i + 1;
            let mut broken = Vec::new();
            while let Some(Step::Broken { bucket, key }) = steps.get(j) {
                broken.push(format!("s3://{bucket}/{key}"));
                j += 1;
            }
            if !broken.is_empty() {
                let newer = &seen[d];
                let resumed = match steps.get(j) {
                    Some(Step::Valid(n)) => Some(&seen[*n]),
                    _ => None,
                };
                let from = resumed.and_then(|n| n.end);
                let to = newer.start;
                let periods = match (from, to, typical) {
                    (Some(f), Some(t), Some(p)) if p > 0 => {
                        Some(((t - f).num_seconds() as f64 / p as f64).round().max(0.0) as u64)
                    }
                    _ => None,
                };
                findings.push(ChainFinding::Broken {
                    bucket: newer.bucket.clone(),
                    key: newer.key.clone(),
                    unreadable: broken,
                    resumed_at: resumed.map(|n| format!("s3://{}/{}", n.bucket, n.key)),
                    from,
                    to,
                    periods,
                });
            }
            i = j;
        } else {
            i += 1;
        }
    }
    findings
}

/// Log files in the trail's folders, inside the time the chain covers, that
/// no valid digest lists: forged, copied from another trail, or listed only
/// by digests that are gone.
fn coverage_findings(
    source: &dyn ValidationSource,
    options: &ValidateOptions,
    organization_id: Option<&str>,
    account: &str,
    seen: &[SeenDigest],
    steps: &[Step],
) -> Vec<ChainFinding> {
    // Spans of the walk not interrupted by a legitimate gap.
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = Vec::new();
    let mut current: Option<(DateTime<Utc>, DateTime<Utc>, String)> = None;
    for step in steps {
        match step {
            Step::Valid(i) => {
                let d = &seen[*i];
                let (Some(s), Some(e)) = (d.start, d.end) else {
                    continue;
                };
                current = Some(match current.take() {
                    None => (s, e, d.bucket.clone()),
                    Some((lo, hi, b)) => (lo.min(s), hi.max(e), b),
                });
            }
            Step::Broken { .. } => {}
            Step::Gap => spans.extend(current.take()),
        }
    }
    spans.extend(current.take());
    if spans.is_empty() {
        return Vec::new();
    }
    let listed: HashSet<(&str, &str)> = seen
        .iter()
        .flat_map(|d| d.log_keys.iter().map(|(b, k)| (b.as_str(), k.as_str())))
        .collect();
    let mut findings = Vec::new();
    let region = &options.source_region;
    let mut visited: HashSet<(String, String)> = HashSet::new();
    for (lo, hi, bucket) in &spans {
        let root = log_root(seen, bucket, organization_id, account, region);
        let Some(root) = root else { continue };
        let mut day = lo.date_naive();
        let last = hi.date_naive();
        let mut days = 0;
        while day <= last && days < MAX_COVERAGE_DAYS {
            let folder = format!("{root}{}/", day.format("%Y/%m/%d"));
            let mut keys = Vec::new();
            if source
                .list(bucket, &folder, "", &mut |k| {
                    keys.push(k.to_owned());
                    true
                })
                .is_err()
            {
                break;
            }
            for key in keys {
                if listed.contains(&(bucket.as_str(), key.as_str()))
                    || !visited.insert((bucket.clone(), key.clone()))
                {
                    continue;
                }
                let Some(minute) = log_key_minute(&key) else {
                    continue;
                };
                if minute >= *lo && minute + Duration::minutes(1) <= *hi {
                    findings.push(ChainFinding::Unlisted {
                        bucket: bucket.clone(),
                        key,
                    });
                }
            }
            day = day.succ_opt().unwrap_or(day);
            days += 1;
        }
    }
    findings
}

/// `[prefix/]AWSLogs/[org/]<account>/CloudTrail/<region>/`, taken from a log
/// file a valid digest lists (so the prefix is the trail's own), else built
/// from the options.
fn log_root(
    seen: &[SeenDigest],
    bucket: &str,
    organization_id: Option<&str>,
    account: &str,
    region: &str,
) -> Option<String> {
    let needle = format!("{account}/CloudTrail/{region}/");
    for d in seen.iter().filter(|d| d.bucket == bucket) {
        for (b, k) in &d.log_keys {
            if b == bucket
                && let Some(at) = k.find(&needle)
            {
                return Some(k[..at + needle.len()].to_owned());
            }
        }
    }
    // No log file to learn the prefix from: derive it from the digest key.
    let d = seen.iter().find(|d| d.bucket == bucket)?;
    let at = d.key.find("AWSLogs/")?;
    let prefix = d.key[..at].strip_suffix('/');
    let mut root = account_root(prefix, organization_id, account);
    root.push_str(&format!("CloudTrail/{region}/"));
    Some(root)
}

/// The minute a log file's name carries (`..._YYYYMMDDTHHmmZ_<unique>.json.gz`).
fn log_key_minute(key: &str) -> Option<DateTime<Utc>> {
    let name = key.rsplit('/').next()?;
    let stem = name.strip_suffix(".json.gz")?;
    let mut parts = stem.rsplitn(3, '_');
    let _unique = parts.next()?;
    let stamp = parts.next()?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%MZ")
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

#[cfg(test)]
mod tests;
