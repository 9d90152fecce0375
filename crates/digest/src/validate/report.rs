//! The outcome of a validation, printed as the AWS CLI prints it or as JSON.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{LogVerdict, ValidateOptions, display_date};

/// The verdict on one digest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestVerdict {
    /// Signed by a listed key, in its original place.
    Valid {
        /// `digestStartTime`.
        start: Option<DateTime<Utc>>,
        /// `digestEndTime`.
        end: Option<DateTime<Utc>>,
    },
    /// The object does not exist.
    NotFound,
    /// Anything else: the AWS CLI's whole line, `Digest file\ts3://…\tINVALID: …`.
    Invalid(String),
}

/// One status line of the walk, in the AWS CLI's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A digest file was read.
    Digest {
        /// A backfill digest (`(backfill) ` lines).
        backfill: bool,
        /// Its bucket.
        bucket: String,
        /// Its key.
        key: String,
        /// What it was found to be.
        verdict: DigestVerdict,
    },
    /// A digest without a previous digest, with older digests still listed.
    Gap {
        /// In the backfill pass.
        backfill: bool,
        /// The date of the next older digest key.
        from: DateTime<Utc>,
        /// The start of the digest that ended the chain.
        to: DateTime<Utc>,
    },
    /// A log file: an index into [`Report::logs`].
    Log(usize),
}

/// The check of one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// `s3Bucket` of the digest's entry.
    pub bucket: String,
    /// `s3Object` of the digest's entry.
    pub key: String,
    /// What it was found to be.
    pub verdict: LogVerdict,
}

/// Evidence the AWS CLI does not look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFinding {
    /// `previousDigestHashValue` is not the SHA-256 of the digest it names.
    PreviousHashMismatch {
        /// Bucket of the digest.
        bucket: String,
        /// Key of the digest.
        key: String,
        /// Key of the previous digest.
        previous_key: String,
    },
    /// `previousDigestSignature` is not the signature of the digest it names.
    PreviousSignatureMismatch {
        /// Bucket of the digest.
        bucket: String,
        /// Key of the digest.
        key: String,
        /// Key of the previous digest.
        previous_key: String,
    },
    /// A digest does not start where the digest it names ends.
    Discontinuous {
        /// Bucket of the digest.
        bucket: String,
        /// Key of the digest.
        key: String,
        /// Key of the previous digest.
        previous_key: String,
        /// The previous digest's end.
        previous_end: DateTime<Utc>,
        /// This digest's start.
        start: DateTime<Utc>,
    },
    /// A valid digest names a previous digest that is missing or invalid;
    /// the time between says how many digest periods are unaccounted for.
    Broken {
        /// Bucket of the newer, valid digest.
        bucket: String,
        /// Key of the newer, valid digest.
        key: String,
        /// The digests that could not be read (`s3://` URLs).
        unreadable: Vec<String>,
        /// The next valid digest the walk went on from.
        resumed_at: Option<String>,
        /// Its end.
        from: Option<DateTime<Utc>>,
        /// The newer digest's start.
        to: Option<DateTime<Utc>>,
        /// Digest periods between `from` and `to`, at the chain's usual period.
        periods: Option<u64>,
    },
    /// A log file in the trail's folder, in a span the chain covers, that no
    /// valid digest lists.
    Unlisted {
        /// Its bucket.
        bucket: String,
        /// Its key.
        key: String,
    },
}

impl ChainFinding {
    /// The line printed for it (TAB-separated, as the AWS CLI's status lines).
    pub fn line(&self) -> String {
        match self {
            Self::PreviousHashMismatch {
                bucket,
                key,
                previous_key,
            } => format!(
                "Chain check\ts3://{bucket}/{key}\tINVALID: previousDigestHashValue is not the SHA-256 of s3://{bucket}/{previous_key}"
            ),
            Self::PreviousSignatureMismatch {
                bucket,
                key,
                previous_key,
            } => format!(
                "Chain check\ts3://{bucket}/{key}\tINVALID: previousDigestSignature is not the signature of s3://{bucket}/{previous_key}"
            ),
            Self::Discontinuous {
                bucket,
                key,
                previous_key,
                previous_end,
                start,
            } => format!(
                "Chain check\ts3://{bucket}/{key}\tINVALID: starts at {}, but s3://{bucket}/{previous_key} before it ends at {}",
                display_date(*start),
                display_date(*previous_end)
            ),
            Self::Broken {
                bucket,
                key,
                unreadable,
                resumed_at,
                from,
                to,
                periods,
            } => {
                let mut line = format!(
                    "Chain check\ts3://{bucket}/{key}\tINVALID: chain broken: {} cannot be read",
                    unreadable.join(", ")
                );
                match resumed_at {
                    Some(r) => line.push_str(&format!("; the walk resumes at {r}")),
                    None => line.push_str("; no older digest follows"),
                }
                if let (Some(f), Some(t), Some(p)) = (from, to, periods) {
                    line.push_str(&format!(
                        "; {} to {} spans {p} digest period{}",
                        display_date(*f),
                        display_date(*t),
                        if *p == 1 { "" } else { "s" }
                    ));
                    let missing_more = p.saturating_sub(unreadable.len() as u64);
                    if missing_more > 0 {
                        line.push_str(&format!(
                            ", so {missing_more} more digest file{} may have been deleted",
                            if missing_more == 1 { "" } else { "s" }
                        ));
                    }
                }
                line
            }
            Self::Unlisted { bucket, key } => format!(
                "Chain check\ts3://{bucket}/{key}\tINVALID: log file not listed in any valid digest"
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::PreviousHashMismatch { .. } => "previousDigestHashValue",
            Self::PreviousSignatureMismatch { .. } => "previousDigestSignature",
            Self::Discontinuous { .. } => "discontinuous",
            Self::Broken { .. } => "chainBroken",
            Self::Unlisted { .. } => "unlistedLogFile",
        }
    }
}

/// The counts of the AWS CLI's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Valid digest files.
    pub valid_digests: u64,
    /// Invalid or missing digest files.
    pub invalid_digests: u64,
    /// Valid backfill digest files.
    pub valid_backfill_digests: u64,
    /// Invalid or missing backfill digest files.
    pub invalid_backfill_digests: u64,
    /// Valid log files.
    pub valid_logs: u64,
    /// Invalid or missing log files.
    pub invalid_logs: u64,
    /// Earliest start of a valid digest, not before the requested start.
    pub found_start: Option<DateTime<Utc>>,
    /// Latest end of a valid digest, not after the requested end.
    pub found_end: Option<DateTime<Utc>>,
}

/// Everything a validation found.
#[derive(Debug, Clone)]
pub struct Report {
    /// `--trail-arn`.
    pub trail_arn: String,
    /// The requested start.
    pub start: DateTime<Utc>,
    /// The requested end.
    pub end: DateTime<Utc>,
    /// The status lines in order.
    pub entries: Vec<Entry>,
    /// The log file checks [`Entry::Log`] points into.
    pub logs: Vec<LogCheck>,
    fatal: Option<String>,
    findings: Vec<ChainFinding>,
}

impl Report {
    pub(super) fn new(options: &ValidateOptions) -> Self {
        Self {
            trail_arn: options.trail_arn.clone(),
            start: options.start,
            end: options.end,
            entries: Vec::new(),
            logs: Vec::new(),
            fatal: None,
            findings: Vec::new(),
        }
    }

    pub(super) fn fill(&mut self, entries: Vec<Entry>, logs: Vec<LogCheck>) {
        self.entries = entries;
        self.logs = logs;
        // A log check that ended the run ends the entries there.
        let cut = self.entries.iter().position(|e| {
            matches!(e, Entry::Log(i) if matches!(self.logs.get(*i).map(|l| &l.verdict), Some(LogVerdict::Fatal(_))))
        });
        if let Some(at) = cut {
            if let Some(Entry::Log(i)) = self.entries.get(at)
                && let Some(LogVerdict::Fatal(message)) =
                    self.logs.get(*i).map(|l| l.verdict.clone())
            {
                self.fatal = Some(message);
            }
            self.entries.truncate(at);
        }
    }

    pub(super) fn set_fatal(&mut self, message: String) {
        // The first failure in output order wins.
        if self.fatal.is_none() {
            self.fatal = Some(message);
        }
    }

    pub(super) fn set_findings(&mut self, findings: Vec<ChainFinding>) {
        self.findings = findings;
    }

    /// The failure that ended the run early, if one did (exit status 255).
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// The checks beyond the AWS CLI's that failed.
    pub fn findings(&self) -> &[ChainFinding] {
        &self.findings
    }

    /// The summary counts.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for entry in &self.entries {
            match entry {
                Entry::Digest {
                    backfill, verdict, ..
                } => match verdict {
                    DigestVerdict::Valid { start, end } => {
                        if *backfill {
                            s.valid_backfill_digests += 1;
                        } else {
                            s.valid_digests += 1;
                        }
                        if let Some(start) = start {
                            let t = (*start).max(self.start);
                            s.found_start = Some(s.found_start.map_or(t, |f| f.min(t)));
                        }
                        if let Some(end) = end {
                            let t = (*end).min(self.end);
                            s.found_end = Some(s.found_end.map_or(t, |f| f.max(t)));
                        }
                    }
                    _ => {
                        if *backfill {
                            s.invalid_backfill_digests += 1;
                        } else {
                            s.invalid_digests += 1;
                        }
                    }
                },
                Entry::Log(i) => match self.logs.get(*i).map(|l| &l.verdict) {
                    Some(LogVerdict::Valid) => s.valid_logs += 1,
                    Some(LogVerdict::Fatal(_)) | None => {}
                    Some(_) => s.invalid_logs += 1,
                },
                Entry::Gap { .. } => {}
            }
        }
        s
    }

    /// The exit status: 255 when the run failed, 1 when anything is invalid
    /// (a chain finding included), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.fatal.is_some() {
            return 255;
        }
        let s = self.summary();
        if s.invalid_digests + s.invalid_backfill_digests + s.invalid_logs > 0
            || !self.findings.is_empty()
        {
            1
        } else {
            0
        }
    }

    /// The status line of an entry and whether it is an error line (stderr).
    fn status_line(&self, entry: &Entry) -> Option<(String, bool)> {
        let prefix = |backfill: bool| if backfill { "(backfill) " } else { "" };
        Some(match entry {
            Entry::Digest {
                backfill,
                bucket,
                key,
                verdict,
            } => match verdict {
                DigestVerdict::Valid { .. } => (
                    format!(
                        "{}Digest file\ts3://{bucket}/{key}\tvalid",
                        prefix(*backfill)
                    ),
                    false,
                ),
                DigestVerdict::NotFound => (
                    format!(
                        "{}Digest file\ts3://{bucket}/{key}\tINVALID: not found",
                        prefix(*backfill)
                    ),
                    true,
                ),
                DigestVerdict::Invalid(message) => {
                    (format!("{}{message}", prefix(*backfill)), true)
                }
            },
            Entry::Gap { backfill, from, to } => (
                format!(
                    "{}No log files were delivered by CloudTrail between {} and {}",
                    prefix(*backfill),
                    display_date(*from),
                    display_date(*to)
                ),
                true,
            ),
            Entry::Log(i) => {
                let log = self.logs.get(*i)?;
                match log.verdict.invalid_reason() {
                    None => (
                        format!("Log file\ts3://{}/{}\tvalid", log.bucket, log.key),
                        false,
                    ),
                    Some(reason) => (
                        format!(
                            "Log file\ts3://{}/{}\tINVALID: {reason}",
                            log.bucket, log.key
                        ),
                        true,
                    ),
                }
            }
        })
    }

    /// Writes the AWS CLI's output: status lines, the summary on `out`, error
    /// lines on `err`, spaced exactly as validation.py spaces them. Chain
    /// findings follow on `err`, after the summary.
    pub fn write_text(
        &self,
        verbose: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<()> {
        writeln!(
            out,
            "Validating log files for trail {} between {} and {}\n",
            self.trail_arn,
            display_date(self.start),
            display_date(self.end)
        )?;
        let mut double_spaced = true;
        for entry in &self.entries {
            let Some((line, is_error)) = self.status_line(entry) else {
                continue;
            };
            if is_error {
                out.flush()?;
                if double_spaced {
                    write!(err, "{line}\n\n")?;
                } else {
                    write!(err, "\n{line}\n\n")?;
                }
                double_spaced = true;
            } else if verbose {
                double_spaced = false;
                writeln!(out, "{line}")?;
            }
        }
        if let Some(message) = &self.fatal {
            out.flush()?;
            write!(err, "\n{message}\n")?;
            return Ok(());
        }
        if !double_spaced {
            writeln!(out)?;
        }
        writeln!(
            out,
            "Results requested for {} to {}",
            display_date(self.start),
            display_date(self.end)
        )?;
        let s = self.summary();
        let total_valid = s.valid_digests + s.valid_backfill_digests;
        let total_invalid = s.invalid_digests + s.invalid_backfill_digests;
        if total_valid == 0 && total_invalid == 0 {
            writeln!(out, "No digests found")?;
        } else {
            match (s.found_start, s.found_end) {
                (Some(a), Some(b)) => writeln!(
                    out,
                    "Results found for {} to {}:",
                    display_date(a),
                    display_date(b)
                )?,
                _ => writeln!(out, "No valid digests found in range")?,
            }
            write_ratio(out, s.valid_digests, s.invalid_digests, "digest")?;
            write_ratio(
                out,
                s.valid_backfill_digests,
                s.invalid_backfill_digests,
                "backfill digest",
            )?;
            write_ratio(out, s.valid_logs, s.invalid_logs, "log")?;
            writeln!(out)?;
        }
        out.flush()?;
        for finding in &self.findings {
            write!(err, "{}\n\n", finding.line())?;
        }
        Ok(())
    }

    /// The whole outcome as one JSON document (`--output json`).
    pub fn to_json(&self) -> Value {
        let s = self.summary();
        let mut digests = Vec::new();
        let mut logs = Vec::new();
        let mut gaps = Vec::new();
        for entry in &self.entries {
            match entry {
                Entry::Digest {
                    backfill,
                    bucket,
                    key,
                    verdict,
                } => {
                    let (status, reason) = match verdict {
                        DigestVerdict::Valid { .. } => ("valid", None),
                        DigestVerdict::NotFound => ("INVALID", Some("not found".to_owned())),
                        DigestVerdict::Invalid(message) => (
                            "INVALID",
                            message.split("\tINVALID: ").nth(1).map(str::to_owned),
                        ),
                    };
                    digests.push(json!({
                        "s3Bucket": bucket,
                        "s3Object": key,
                        "backfill": backfill,
                        "status": status,
                        "reason": reason,
                    }));
                }
                Entry::Gap { backfill, from, to } => gaps.push(json!({
                    "backfill": backfill,
                    "from": display_date(*from),
                    "to": display_date(*to),
                })),
                Entry::Log(i) => {
                    if let Some(log) = self.logs.get(*i) {
                        let reason = log.verdict.invalid_reason();
                        logs.push(json!({
                            "s3Bucket": log.bucket,
                            "s3Object": log.key,
                            "status": if reason.is_some() { "INVALID" } else { "valid" },
                            "reason": reason,
                        }));
                    }
                }
            }
        }
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| json!({"check": f.kind(), "message": f.line()}))
            .collect();
        json!({
            "trailArn": self.trail_arn,
            "requestedStart": display_date(self.start),
            "requestedEnd": display_date(self.end),
            "foundStart": s.found_start.map(display_date),
            "foundEnd": s.found_end.map(display_date),
            "digestFiles": digests,
            "logFiles": logs,
            "gaps": gaps,
            "chainChecks": findings,
            "summary": {
                "validDigests": s.valid_digests,
                "invalidDigests": s.invalid_digests,
                "validBackfillDigests": s.valid_backfill_digests,
                "invalidBackfillDigests": s.invalid_backfill_digests,
                "validLogs": s.valid_logs,
                "invalidLogs": s.invalid_logs,
            },
            "error": self.fatal,
            "exitCode": self.exit_code(),
        })
    }
}

fn write_ratio(out: &mut dyn Write, valid: u64, invalid: u64, name: &str) -> io::Result<()> {
    let total = valid + invalid;
    if total > 0 {
        write!(out, "\n{valid}/{total} {name} files valid")?;
        if invalid > 0 {
            write!(out, ", {invalid}/{total} {name} files INVALID")?;
        }
    }
    Ok(())
}
