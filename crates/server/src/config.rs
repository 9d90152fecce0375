//! `cairn serve` configuration: an optional TOML file, environment variables, defaults.
//!
//! ```toml
//! version = 1
//! account_id = "123456789012"   # default
//! region = "us-east-1"          # default
//!
//! [organization]                 # optional
//! id = "o-exampleorgid"
//! management_account = "123456789012"
//! member_accounts = ["210987654321"]
//!
//! [delivery]
//! interval = "5m"                # how often log files are delivered
//! max_batch_bytes = 67108864     # deliver early past this much uncompressed JSON
//! gzip_level = 6
//!
//! [ingest]
//! dedup_window = "24h"           # at least 24 hours
//! dedup_max_entries = 10000000
//! wal_max_disk_bytes = 8589934592
//!
//! [notifications]                # SNS
//! public_url = "http://127.0.0.1:4566"  # base of SigningCertURL/SubscribeURL (default: http://<listen>)
//! file_roots = ["/var/lib/cairn/notifications"]  # where `file` subscriptions may write
//!
//! [history]
//! enabled = true                 # keep the event history (LookupEvents); off by default
//!
//! [query]                        # Athena and CloudTrail Lake statements
//! memory_mib = 1024              # per statement, before it spills or fails
//! timeout = "30m"                # per statement
//!
//! [storage]                      # default: a local directory under the data dir
//! url = "s3://bucket/prefix"
//! [storage.options]              # object_store's own keys, passed through
//! aws_endpoint = "http://127.0.0.1:5000"
//! aws_allow_http = "true"
//! ```
//!
//! Every problem in a file is reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use cairn_model::{AccountId, OrganizationId, Region};

/// Environment variable naming the root access key ID.
pub const ENV_ROOT_ACCESS_KEY_ID: &str = "CAIRN_ROOT_ACCESS_KEY_ID";
/// Environment variable naming the root secret access key.
pub const ENV_ROOT_SECRET_ACCESS_KEY: &str = "CAIRN_ROOT_SECRET_ACCESS_KEY";

/// A configuration problem (all of them, one per line).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Option<u32>,
    account_id: Option<String>,
    region: Option<String>,
    organization: Option<FileOrganization>,
    #[serde(default)]
    delivery: FileDelivery,
    #[serde(default)]
    ingest: FileIngest,
    #[serde(default)]
    limits: FileLimits,
    storage: Option<FileStorage>,
    #[serde(default)]
    notifications: FileNotifications,
    #[serde(default)]
    history: FileHistory,
    #[serde(default)]
    query: FileQuery,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    memory_mib: Option<u64>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHistory {
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotifications {
    public_url: Option<String>,
    file_roots: Option<Vec<PathBuf>>,
}

/// Where SNS notifications point and may be written.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// The base of `SigningCertURL`, `SubscribeURL` and `UnsubscribeURL`
    /// (default `http://<listen address>`).
    pub public_url: Option<String>,
    /// Directories `file` subscriptions may append to (default
    /// `<data-dir>/notifications`).
    pub file_roots: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_buffered_body_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOrganization {
    id: String,
    management_account: Option<String>,
    #[serde(default)]
    member_accounts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDelivery {
    interval: Option<String>,
    digest_interval: Option<String>,
    digest_key_rotation: Option<String>,
    max_batch_bytes: Option<usize>,
    gzip_level: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIngest {
    dedup_window: Option<String>,
    dedup_max_entries: Option<usize>,
    wal_max_disk_bytes: Option<u64>,
    wal_segment_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    url: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

/// The organization, validated.
#[derive(Debug, Clone)]
pub struct OrganizationConfig {
    /// `o-...`.
    pub id: String,
    /// The management account.
    pub management_account: String,
    /// Members.
    pub member_accounts: Vec<String>,
}

/// The effective configuration of `cairn serve`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: std::net::SocketAddr,
    /// The data dir (WAL, metastore, local buckets, credentials).
    pub data_dir: PathBuf,
    /// This server's account.
    pub account_id: String,
    /// The default region, for clients whose credential scope names none.
    pub region: String,
    /// The organization.
    pub organization: Option<OrganizationConfig>,
    /// Log-file delivery cadence.
    pub delivery_interval: Duration,
    /// Digest cadence.
    pub digest_interval: Duration,
    /// How long a digest signing key signs before the next one takes over.
    pub digest_key_rotation: Duration,
    /// Early delivery bound.
    pub max_batch_bytes: usize,
    /// gzip level.
    pub gzip_level: u32,
    /// How long eventIDs are remembered.
    pub dedup_window: Duration,
    /// How many eventIDs at most.
    pub dedup_max_entries: usize,
    /// The WAL's disk bound.
    pub wal_max_disk_bytes: u64,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// Object store URL (None: `<data-dir>/objects`).
    pub storage_url: Option<String>,
    /// object_store options.
    pub storage_options: BTreeMap<String, String>,
    /// Connection and request-body bounds.
    pub limits: crate::listener::ConnectionLimits,
    /// SNS notifications.
    pub notifications: NotificationsConfig,
    /// Whether the event history (LookupEvents) is kept.
    pub history_enabled: bool,
    /// Bounds of SQL statements (Athena, CloudTrail Lake).
    pub query: QueryConfig,
}

/// Bounds of SQL statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    /// Memory one statement's operators may hold before they spill or fail.
    pub memory_bytes: u64,
    /// How long one statement may run.
    pub timeout: Duration,
}

/// The shortest dedup window the configuration accepts.
const MIN_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

// The documented range of every numeric key (cairn.example.toml lists them).
// Values outside them start a server that cannot work (a WAL bound of 0
// throttles every request; 0-byte segments open one file per record), so
// start-up refuses them, naming the key.
const HOUR: Duration = Duration::from_secs(3600);
const RANGE_DELIVERY_INTERVAL: (Duration, Duration) = (Duration::from_secs(1), HOUR);
const RANGE_DIGEST_INTERVAL: (Duration, Duration) = (Duration::from_secs(1), HOUR);
const RANGE_DIGEST_KEY_ROTATION: (Duration, Duration) = (
    Duration::from_secs(1),
    Duration::from_secs(3650 * 24 * 3600),
);
const RANGE_DEDUP_WINDOW: (Duration, Duration) =
    (MIN_DEDUP_WINDOW, Duration::from_secs(30 * 24 * 3600));
const RANGE_MAX_BATCH_BYTES: (u64, u64) = (64 * 1024, 1024 * 1024 * 1024);
const RANGE_DEDUP_MAX_ENTRIES: (u64, u64) = (10_000, 500_000_000);
const RANGE_WAL_SEGMENT_BYTES: (u64, u64) = (1024 * 1024, 1024 * 1024 * 1024);
const MIN_WAL_MAX_DISK_BYTES: u64 = 64 * 1024 * 1024;
const RANGE_MAX_CONNECTIONS: (u64, u64) = (16, 100_000);
const RANGE_HEADER_READ_TIMEOUT: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(300));
const RANGE_BODY_READ_TIMEOUT: (Duration, Duration) = (Duration::from_secs(1), HOUR);
const RANGE_MAX_BUFFERED_BODY_BYTES: (u64, u64) = (64 * 1024 * 1024, 64 * 1024 * 1024 * 1024);

impl ServerConfig {
    /// Builds the configuration from flags, an optional file and defaults.
    pub fn load(
        listen: std::net::SocketAddr,
        data_dir: &Path,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let parsed: FileConfig = match file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(vec![format!("cannot read {}: {e}", path.display())])
                })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?
            }
        };
        Self::build(listen, data_dir, parsed)
    }

    /// Parses configuration text (for tests and `cairn config check`).
    pub fn from_toml(
        listen: std::net::SocketAddr,
        data_dir: &Path,
        text: &str,
    ) -> Result<Self, ConfigError> {
        let parsed: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
        Self::build(listen, data_dir, parsed)
    }

    fn build(
        listen: std::net::SocketAddr,
        data_dir: &Path,
        file: FileConfig,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if let Some(v) = file.version
            && v != 1
        {
            problems.push(format!(
                "version {v} is not supported (this build reads version 1)"
            ));
        }
        let account_id = file.account_id.unwrap_or_else(|| "123456789012".to_owned());
        if AccountId::new(&account_id).is_err() {
            problems.push(format!("account_id {account_id:?} must be 12 digits"));
        }
        let region = file.region.unwrap_or_else(|| "us-east-1".to_owned());
        if Region::new(&region).is_err() {
            problems.push(format!("region {region:?} is not a region name"));
        }
        let organization = file.organization.map(|o| {
            if OrganizationId::new(&o.id).is_err() {
                problems.push(format!(
                    "organization.id {:?} must look like o-exampleorgid",
                    o.id
                ));
            }
            let management_account = o.management_account.unwrap_or_else(|| account_id.clone());
            for a in std::iter::once(&management_account).chain(&o.member_accounts) {
                if AccountId::new(a).is_err() {
                    problems.push(format!("organization account {a:?} must be 12 digits"));
                }
            }
            OrganizationConfig {
                id: o.id,
                management_account,
                member_accounts: o.member_accounts,
            }
        });
        let mut duration = |name: &str, value: Option<String>, default: Duration| match value {
            None => default,
            Some(text) => match humantime::parse_duration(&text) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    problems.push(format!(
                        "{name} {text:?} is not a duration such as 5m or 30s"
                    ));
                    default
                }
            },
        };
        let query_timeout = duration(
            "query.timeout",
            file.query.timeout,
            Duration::from_secs(30 * 60),
        );
        let delivery_interval = duration(
            "delivery.interval",
            file.delivery.interval,
            Duration::from_secs(300),
        );
        let digest_interval = duration(
            "delivery.digest_interval",
            file.delivery.digest_interval,
            Duration::from_secs(3600),
        );
        let digest_key_rotation = duration(
            "delivery.digest_key_rotation",
            file.delivery.digest_key_rotation,
            Duration::from_secs(30 * 24 * 3600),
        );
        let dedup_window = duration(
            "ingest.dedup_window",
            file.ingest.dedup_window,
            MIN_DEDUP_WINDOW,
        );
        let default_limits = crate::listener::ConnectionLimits::default();
        let header_read_timeout = duration(
            "limits.header_read_timeout",
            file.limits.header_read_timeout,
            default_limits.header_read_timeout,
        );
        let body_read_timeout = duration(
            "limits.body_read_timeout",
            file.limits.body_read_timeout,
            default_limits.body_read_timeout,
        );
        for (name, value, (min, max)) in [
            (
                "delivery.interval",
                delivery_interval,
                RANGE_DELIVERY_INTERVAL,
            ),
            (
                "delivery.digest_interval",
                digest_interval,
                RANGE_DIGEST_INTERVAL,
            ),
            (
                "delivery.digest_key_rotation",
                digest_key_rotation,
                RANGE_DIGEST_KEY_ROTATION,
            ),
            ("ingest.dedup_window", dedup_window, RANGE_DEDUP_WINDOW),
        ] {
            if value < min || value > max {
                problems.push(format!(
                    "{name} {} is out of range: it must be from {} to {}",
                    humantime::format_duration(value),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ));
            }
        }
        for (name, value, (min, max)) in [
            (
                "limits.header_read_timeout",
                header_read_timeout,
                RANGE_HEADER_READ_TIMEOUT,
            ),
            (
                "limits.body_read_timeout",
                body_read_timeout,
                RANGE_BODY_READ_TIMEOUT,
            ),
        ] {
            if value < min || value > max {
                problems.push(format!(
                    "{name} {} is out of range: it must be from {} to {}",
                    humantime::format_duration(value),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ));
            }
        }
        let max_connections = file
            .limits
            .max_connections
            .unwrap_or(default_limits.max_connections) as u64;
        let max_buffered_body_bytes = file
            .limits
            .max_buffered_body_bytes
            .unwrap_or(default_limits.max_buffered_body_bytes);
        let max_batch_bytes = file.delivery.max_batch_bytes.unwrap_or(64 * 1024 * 1024) as u64;
        let dedup_max_entries = file.ingest.dedup_max_entries.unwrap_or(10_000_000) as u64;
        let wal_segment_bytes = file.ingest.wal_segment_bytes.unwrap_or(64 * 1024 * 1024);
        let wal_max_disk_bytes = file
            .ingest
            .wal_max_disk_bytes
            .unwrap_or(8 * 1024 * 1024 * 1024);
        for (name, value, (min, max)) in [
            (
                "delivery.max_batch_bytes",
                max_batch_bytes,
                RANGE_MAX_BATCH_BYTES,
            ),
            (
                "ingest.dedup_max_entries",
                dedup_max_entries,
                RANGE_DEDUP_MAX_ENTRIES,
            ),
            (
                "ingest.wal_segment_bytes",
                wal_segment_bytes,
                RANGE_WAL_SEGMENT_BYTES,
            ),
            (
                "limits.max_connections",
                max_connections,
                RANGE_MAX_CONNECTIONS,
            ),
            (
                "limits.max_buffered_body_bytes",
                max_buffered_body_bytes,
                RANGE_MAX_BUFFERED_BODY_BYTES,
            ),
        ] {
            if value < min || value > max {
                problems.push(format!(
                    "{name} {value} is out of range: it must be from {min} to {max}"
                ));
            }
        }
        // The WAL needs room for a few segments, or ingest is throttled at once.
        let min_wal_disk = (4 * wal_segment_bytes).max(MIN_WAL_MAX_DISK_BYTES);
        if wal_max_disk_bytes < min_wal_disk {
            problems.push(format!(
                "ingest.wal_max_disk_bytes {wal_max_disk_bytes} is out of range: it must be at least \
                 {min_wal_disk} (64 MiB, and four times ingest.wal_segment_bytes)"
            ));
        }
        let query_memory_mib = file.query.memory_mib.unwrap_or(1024);
        if !(64..=1_048_576).contains(&query_memory_mib) {
            problems.push(format!(
                "query.memory_mib {query_memory_mib} is out of range: it must be 64 to 1048576"
            ));
        }
        let gzip_level = file.delivery.gzip_level.unwrap_or(6);
        if gzip_level > 9 {
            problems.push("delivery.gzip_level must be 0 to 9".to_owned());
        }
        if let Some(s) = &file.storage
            && !(s.url.starts_with("s3://") || s.url.starts_with("file://"))
        {
            problems.push(format!(
                "storage.url {:?} must start with s3:// or file://",
                s.url
            ));
        }
        if let Some(url) = &file.notifications.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!(
                "notifications.public_url {url:?} must be an http:// or https:// URL"
            ));
        }
        let configured_roots = file.notifications.file_roots.clone();
        for root in configured_roots.iter().flatten() {
            if !root.is_absolute() {
                problems.push(format!(
                    "notifications.file_roots entry {} must be an absolute path",
                    root.display()
                ));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        // The default root is under the data dir, made absolute: `file`
        // endpoints are absolute paths compared against it.
        let file_roots = configured_roots.unwrap_or_else(|| {
            let root = data_dir.join("notifications");
            vec![std::path::absolute(&root).unwrap_or(root)]
        });
        let notifications = NotificationsConfig {
            public_url: file.notifications.public_url.clone(),
            file_roots,
        };
        Ok(Self {
            listen,
            data_dir: data_dir.to_owned(),
            account_id,
            region,
            organization,
            delivery_interval,
            digest_interval,
            digest_key_rotation,
            max_batch_bytes: max_batch_bytes as usize,
            gzip_level,
            dedup_window,
            dedup_max_entries: dedup_max_entries as usize,
            wal_max_disk_bytes,
            wal_segment_bytes,
            storage_url: file.storage.as_ref().map(|s| s.url.clone()),
            storage_options: file.storage.map(|s| s.options).unwrap_or_default(),
            limits: crate::listener::ConnectionLimits {
                max_connections: max_connections as usize,
                header_read_timeout,
                body_read_timeout,
                max_buffered_body_bytes,
            },
            notifications,
            history_enabled: file.history.enabled.unwrap_or(false),
            query: QueryConfig {
                memory_bytes: query_memory_mib.saturating_mul(1024 * 1024),
                timeout: query_timeout,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> std::net::SocketAddr {
        "127.0.0.1:7447".parse().unwrap()
    }

    #[test]
    fn test_defaults() {
        let c = ServerConfig::from_toml(addr(), Path::new("d"), "").unwrap();
        assert_eq!(c.account_id, "123456789012");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.delivery_interval, Duration::from_secs(300));
        assert!(c.organization.is_none());
    }

    #[test]
    fn test_full_file() {
        let text = r#"
version = 1
account_id = "111122223333"
region = "eu-west-1"
[organization]
id = "o-exampleorgid"
member_accounts = ["444455556666"]
[delivery]
interval = "1s"
[storage]
url = "s3://bucket/prefix"
[storage.options]
aws_endpoint = "http://127.0.0.1:5000"
"#;
        let c = ServerConfig::from_toml(addr(), Path::new("d"), text).unwrap();
        assert_eq!(c.delivery_interval, Duration::from_secs(1));
        let org = c.organization.unwrap();
        assert_eq!(org.management_account, "111122223333");
        assert_eq!(c.storage_options["aws_endpoint"], "http://127.0.0.1:5000");
    }

    #[test]
    fn test_every_problem_is_reported() {
        let text = r#"
account_id = "12"
region = "Nowhere"
[delivery]
interval = "soon"
"#;
        let err = ServerConfig::from_toml(addr(), Path::new("d"), text).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(ServerConfig::from_toml(addr(), Path::new("d"), "unknown_key = 1").is_err());
    }

    /// Issue 11: out-of-range values stop start-up with an error naming the key.
    #[test]
    fn issue_11_out_of_range_values_are_refused_naming_the_key() {
        for (text, key) in [
            (
                "[ingest]\nwal_max_disk_bytes = 0",
                "ingest.wal_max_disk_bytes",
            ),
            (
                "[ingest]\nwal_segment_bytes = 0",
                "ingest.wal_segment_bytes",
            ),
            (
                "[ingest]\nwal_segment_bytes = 1073741824\nwal_max_disk_bytes = 2147483648",
                "ingest.wal_max_disk_bytes",
            ),
            (
                "[ingest]\ndedup_max_entries = 0",
                "ingest.dedup_max_entries",
            ),
            ("[ingest]\ndedup_window = \"400d\"", "ingest.dedup_window"),
            (
                "[delivery]\nmax_batch_bytes = 10",
                "delivery.max_batch_bytes",
            ),
            ("[delivery]\ninterval = \"2d\"", "delivery.interval"),
            (
                "[delivery]\ndigest_interval = \"2h\"",
                "delivery.digest_interval",
            ),
        ] {
            let err = ServerConfig::from_toml(addr(), Path::new("d"), text).unwrap_err();
            assert_eq!(err.0.len(), 1, "{text}: {err}");
            assert!(err.0[0].starts_with(key), "{text}: {err}");
            assert!(err.0[0].contains("out of range"), "{text}: {err}");
        }
    }

    #[test]
    fn test_notifications_keys_are_checked() {
        let config = ServerConfig::from_toml(addr(), Path::new("/srv/d"), "").unwrap();
        assert_eq!(config.notifications.public_url, None);
        assert_eq!(
            config.notifications.file_roots,
            [Path::new("/srv/d/notifications")]
        );
        let text = "[notifications]\npublic_url = \"ftp://x\"\nfile_roots = [\"relative\"]";
        let err = ServerConfig::from_toml(addr(), Path::new("d"), text).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].starts_with("notifications.public_url"), "{err}");
        assert!(err.0[1].starts_with("notifications.file_roots"), "{err}");
    }

    #[test]
    fn test_example_config_parses() {
        let text = include_str!("../../../cairn.example.toml");
        ServerConfig::from_toml(addr(), Path::new("d"), text).unwrap();
    }
}
