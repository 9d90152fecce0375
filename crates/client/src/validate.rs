//! Where `cairn validate-logs` reads a trail from: a running server over the
//! AWS wire protocols ([`OnlineSource`]), or a directory copy of a bucket
//! with the public keys in a file ([`LocalDirSource`]).
//!
//! Both implement [`ValidationSource`]; the walk itself is `cairn_digest::validate`.
//!
//! **Online**, the calls are the AWS CLI's: CloudTrail `DescribeTrails` and
//! `ListPublicKeys`, Organizations `DescribeOrganization`, S3 `ListObjects`
//! (v1, `Marker`, `encoding-type=url`) and `GetObject` with its `x-amz-meta-*`
//! headers, each SigV4-signed for its own service. Endpoints are found per
//! service as botocore finds them: `AWS_ENDPOINT_URL_<SERVICE>`, then
//! `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`, then the local
//! default; an explicit `--endpoint-url` applies to all three services.
//!
//! **Offline**, the directory is the bucket: `<dir>/<key>`. A digest's
//! metadata is read from `<dir>/<key>.metadata.json` (a flat map, or the
//! output of `aws s3api head-object`, whose `Metadata` member is used), else
//! from Cairn's own side store when the directory is a local Cairn bucket
//! (`<dir>/../.cairn-meta/<bucket>/<key>`). The public keys file is the
//! output of `aws cloudtrail list-public-keys`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use cairn_digest::validate::{
    PublicKeyEntry, SourceError, StoredObject, TrailLocation, ValidationSource,
};

use crate::api::{
    Answer, AwsApi, CLOUDTRAIL, JsonService, MAX_OBJECT_BYTES, ORGANIZATIONS, Request,
    S3_ENDPOINT_VARIABLE, UNRESERVED, object_path, resolve_service, s3_error, xml_all, xml_text,
};
use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// The endpoints and credentials of the three services validate-logs calls.
#[derive(Debug, Clone)]
pub struct ValidateEndpoints {
    /// CloudTrail (credentials and region come from here).
    pub cloudtrail: ClientConfig,
    /// S3.
    pub s3: String,
    /// Organizations.
    pub organizations: String,
}

/// Resolves endpoints per service as botocore does, and the credentials and
/// region as [`crate::resolve`] does (`region` overrides the region found).
pub fn resolve_validate_endpoints(
    explicit_endpoint: Option<&str>,
    explicit_profile: Option<&str>,
    region: Option<&str>,
    data_dir_hint: &Path,
) -> Result<ValidateEndpoints> {
    let mut cloudtrail = resolve_service(
        explicit_endpoint,
        explicit_profile,
        data_dir_hint,
        CLOUDTRAIL.endpoint_variable,
    )?;
    let s3 = resolve_service(
        explicit_endpoint,
        explicit_profile,
        data_dir_hint,
        S3_ENDPOINT_VARIABLE,
    )?;
    let organizations = resolve_service(
        explicit_endpoint,
        explicit_profile,
        data_dir_hint,
        ORGANIZATIONS.endpoint_variable,
    )?;
    if let Some(region) = region.filter(|r| !r.is_empty()) {
        cloudtrail.region = region.to_owned();
    }
    Ok(ValidateEndpoints {
        cloudtrail,
        s3: s3.endpoint,
        organizations: organizations.endpoint,
    })
}

/// A running server (or AWS itself) read over HTTP, SigV4-signed.
pub struct OnlineSource {
    api: AwsApi,
    runtime: tokio::runtime::Handle,
    endpoints: ValidateEndpoints,
}

impl std::fmt::Debug for OnlineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineSource")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl OnlineSource {
    /// A source that runs its requests on `runtime` (its methods block, so
    /// call them from outside the runtime's worker threads).
    pub fn new(endpoints: ValidateEndpoints, runtime: tokio::runtime::Handle) -> Result<Self> {
        let api = AwsApi::new(&endpoints.cloudtrail, None)?;
        Ok(Self {
            api,
            runtime,
            endpoints,
        })
    }

    /// A JSON 1.1 call; errors read as botocore prints them.
    fn call_json(
        &self,
        service: JsonService,
        endpoint: &str,
        operation: &str,
        input: Value,
    ) -> std::result::Result<Value, SourceError> {
        self.runtime
            .block_on(self.api.call_json(service, endpoint, operation, &input))
            .map_err(|e| SourceError::Fatal(e.to_string()))
    }

    /// A signed S3 GET.
    fn s3_get(&self, path: &str, query: &str) -> std::result::Result<Answer, SourceError> {
        self.runtime
            .block_on(self.api.request(
                Request {
                    service: "s3",
                    endpoint: &self.endpoints.s3,
                    method: "GET",
                    path,
                    query,
                    headers: &[],
                    body: Vec::new(),
                },
                MAX_OBJECT_BYTES,
            ))
            .map_err(SourceError::Fatal)
    }

    fn s3_error(answer: &Answer, operation: &str) -> SourceError {
        match s3_error(answer, operation) {
            Error::Api { code, .. } if code == "NoSuchKey" => SourceError::NoSuchKey,
            other => SourceError::Fatal(other.to_string()),
        }
    }

    fn get_object(&self, bucket: &str, key: &str) -> std::result::Result<Answer, SourceError> {
        let answer = self.s3_get(&object_path(bucket, key), "")?;
        if answer.status == 404 && answer.body.is_empty() {
            return Err(SourceError::NoSuchKey);
        }
        if answer.status >= 300 {
            return Err(Self::s3_error(&answer, "GetObject"));
        }
        Ok(answer)
    }
}

impl ValidationSource for OnlineSource {
    fn trail(&self, trail_arn: &str) -> std::result::Result<TrailLocation, SourceError> {
        let answer = self.call_json(
            CLOUDTRAIL,
            &self.endpoints.cloudtrail.endpoint,
            "DescribeTrails",
            json!({}),
        )?;
        let trails = answer
            .get("trailList")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let trail = trails
            .iter()
            .find(|t| t.get("TrailARN").and_then(Value::as_str) == Some(trail_arn))
            .ok_or_else(|| {
                SourceError::Fatal(format!("A trail could not be found for {trail_arn}"))
            })?;
        Ok(TrailLocation {
            bucket: trail
                .get("S3BucketName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            prefix: trail
                .get("S3KeyPrefix")
                .and_then(Value::as_str)
                .map(str::to_owned),
            is_organization_trail: trail
                .get("IsOrganizationTrail")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    fn organization_id(&self) -> std::result::Result<String, SourceError> {
        let answer = self.call_json(
            ORGANIZATIONS,
            &self.endpoints.organizations,
            "DescribeOrganization",
            json!({}),
        )?;
        answer
            .pointer("/Organization/Id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SourceError::Fatal("DescribeOrganization returned no Id".into()))
    }

    fn public_keys(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> std::result::Result<Vec<PublicKeyEntry>, SourceError> {
        let answer = self.call_json(
            CLOUDTRAIL,
            &self.endpoints.cloudtrail.endpoint,
            "ListPublicKeys",
            json!({"StartTime": start.timestamp(), "EndTime": end.timestamp()}),
        )?;
        Ok(public_keys_of(&answer))
    }

    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> std::result::Result<(), SourceError> {
        let mut marker = marker.to_owned();
        loop {
            let mut query = String::from("encoding-type=url");
            if !marker.is_empty() {
                query.push_str(&format!(
                    "&marker={}",
                    utf8_percent_encode(&marker, UNRESERVED)
                ));
            }
            query.push_str(&format!(
                "&prefix={}",
                utf8_percent_encode(prefix, UNRESERVED)
            ));
            let path = format!("/{}", utf8_percent_encode(bucket, UNRESERVED));
            let answer = self.s3_get(&path, &query)?;
            if answer.status >= 300 {
                return Err(match Self::s3_error(&answer, "ListObjects") {
                    SourceError::NoSuchKey => SourceError::Fatal(
                        "An error occurred (NoSuchKey) when calling the ListObjects operation"
                            .into(),
                    ),
                    other => other,
                });
            }
            let text = String::from_utf8_lossy(&answer.body);
            let url_encoded = xml_text(&text, "EncodingType").as_deref() == Some("url");
            let decode = |s: String| {
                if url_encoded {
                    percent_decode_str(&s).decode_utf8_lossy().into_owned()
                } else {
                    s
                }
            };
            let keys: Vec<String> = xml_all(&text, "Key").into_iter().map(decode).collect();
            for key in &keys {
                if !visit(key) {
                    return Ok(());
                }
            }
            let truncated = xml_text(&text, "IsTruncated").as_deref() == Some("true");
            let next = xml_text(&text, "NextMarker")
                .map(decode)
                .or_else(|| keys.last().cloned());
            match next {
                Some(next) if truncated && next != marker => marker = next,
                _ => return Ok(()),
            }
        }
    }

    fn get(&self, bucket: &str, key: &str) -> std::result::Result<StoredObject, SourceError> {
        let answer = self.get_object(bucket, key)?;
        let metadata = answer
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok(StoredObject {
            body: answer.body,
            metadata,
        })
    }

    fn open(
        &self,
        bucket: &str,
        key: &str,
    ) -> std::result::Result<Box<dyn BufRead + Send + '_>, SourceError> {
        let answer = self.get_object(bucket, key)?;
        Ok(Box::new(Cursor::new(answer.body)))
    }
}

/// `PublicKeyList` of a ListPublicKeys answer (or of `aws cloudtrail list-public-keys` output).
fn public_keys_of(answer: &Value) -> Vec<PublicKeyEntry> {
    answer
        .get("PublicKeyList")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|k| {
                    Some(PublicKeyEntry {
                        fingerprint: k.get("Fingerprint")?.as_str()?.to_owned(),
                        value: k.get("Value")?.as_str()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A directory copy of a trail's bucket, with the public keys in a file.
#[derive(Debug)]
pub struct LocalDirSource {
    root: PathBuf,
    bucket: String,
    prefix: Option<String>,
    organization_id: Option<String>,
    public_keys: Vec<PublicKeyEntry>,
}

impl LocalDirSource {
    /// Opens `root` as bucket `bucket` (default: the directory's name), with
    /// the keys of `public_keys_file` (`aws cloudtrail list-public-keys` output).
    /// The organization ID is found from the layout when `account_id` is
    /// given and `AWSLogs/o-…/<account_id>/` exists.
    pub fn open(
        root: &Path,
        bucket: Option<&str>,
        prefix: Option<&str>,
        account_id: Option<&str>,
        public_keys_file: &Path,
    ) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidOption {
            name: "local-dir",
            reason,
        };
        if !root.is_dir() {
            return Err(invalid(format!("{} is not a directory", root.display())));
        }
        let bucket = match bucket {
            Some(b) => b.to_owned(),
            None => root
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| invalid("cannot name the bucket; pass --s3-bucket".into()))?,
        };
        let text = fs::read_to_string(public_keys_file).map_err(|e| Error::InvalidOption {
            name: "public-keys",
            reason: format!("{}: {e}", public_keys_file.display()),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::InvalidOption {
            name: "public-keys",
            reason: format!(
                "{} is not the JSON of `aws cloudtrail list-public-keys`: {e}",
                public_keys_file.display()
            ),
        })?;
        let public_keys = public_keys_of(&value);
        let prefix = prefix.filter(|p| !p.is_empty()).map(str::to_owned);
        let mut logs_dir = root.to_owned();
        if let Some(p) = &prefix {
            logs_dir.push(p);
        }
        logs_dir.push("AWSLogs");
        let organization_id = account_id.and_then(|account| {
            fs::read_dir(&logs_dir).ok()?.flatten().find_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                (name.starts_with("o-") && entry.path().join(account).is_dir()).then_some(name)
            })
        });
        Ok(Self {
            root: root.to_owned(),
            bucket,
            prefix,
            organization_id,
            public_keys,
        })
    }

    /// The file of `key`, if the key stays inside the directory.
    fn path_of(&self, bucket: &str, key: &str) -> std::result::Result<PathBuf, SourceError> {
        if bucket != self.bucket {
            return Err(SourceError::Fatal(format!(
                "An error occurred (NoSuchBucket) when calling the GetObject operation: the directory holds bucket {}, not {bucket}",
                self.bucket
            )));
        }
        let relative = Path::new(key);
        if key.is_empty()
            || relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(SourceError::NoSuchKey);
        }
        Ok(self.root.join(relative))
    }

    fn metadata_of(&self, key: &str, path: &Path) -> BTreeMap<String, String> {
        let mut sidecar = path.as_os_str().to_owned();
        sidecar.push(".metadata.json");
        let from_sidecar = fs::read_to_string(&sidecar).ok().or_else(|| {
            let side_store = self
                .root
                .parent()?
                .join(".cairn-meta")
                .join(&self.bucket)
                .join(key);
            fs::read_to_string(side_store).ok()
        });
        let Some(text) = from_sidecar else {
            return BTreeMap::new();
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            return BTreeMap::new();
        };
        let map = value.get("Metadata").unwrap_or(&value);
        map.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl ValidationSource for LocalDirSource {
    fn trail(&self, _trail_arn: &str) -> std::result::Result<TrailLocation, SourceError> {
        Ok(TrailLocation {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            is_organization_trail: self.organization_id.is_some(),
        })
    }

    fn organization_id(&self) -> std::result::Result<String, SourceError> {
        self.organization_id.clone().ok_or_else(|| {
            SourceError::Fatal("the directory has no AWSLogs/o-…/<account>/ folder".into())
        })
    }

    fn public_keys(
        &self,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> std::result::Result<Vec<PublicKeyEntry>, SourceError> {
        // The file is what the auditor was given; every key in it is a candidate.
        Ok(self.public_keys.clone())
    }

    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> std::result::Result<(), SourceError> {
        if bucket != self.bucket {
            return Err(SourceError::Fatal(format!(
                "An error occurred (NoSuchBucket) when calling the ListObjects operation: the directory holds bucket {}, not {bucket}",
                self.bucket
            )));
        }
        // Walk only the folder the prefix is in.
        let folder = match prefix.rfind('/') {
            Some(at) => &prefix[..at],
            None => "",
        };
        let mut keys = Vec::new();
        let start = if folder.is_empty() {
            self.root.clone()
        } else {
            match self.path_of(bucket, folder) {
                Ok(p) => p,
                Err(_) => return Ok(()),
            }
        };
        let mut stack = vec![(start, folder.to_owned())];
        while let Some((dir, key_dir)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = if key_dir.is_empty() {
                    name.clone()
                } else {
                    format!("{key_dir}/{name}")
                };
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    if name != ".cairn-meta"
                        && (prefix.starts_with(&key) || key.starts_with(prefix))
                    {
                        stack.push((entry.path(), key));
                    }
                } else if !name.ends_with(".metadata.json")
                    && key.starts_with(prefix)
                    && key.as_str() > marker
                {
                    keys.push(key);
                }
            }
        }
        keys.sort_unstable();
        for key in &keys {
            if !visit(key) {
                break;
            }
        }
        Ok(())
    }

    fn get(&self, bucket: &str, key: &str) -> std::result::Result<StoredObject, SourceError> {
        let path = self.path_of(bucket, key)?;
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SourceError::NoSuchKey);
            }
            Err(e) => return Err(SourceError::Fatal(format!("{}: {e}", path.display()))),
        };
        Ok(StoredObject {
            metadata: self.metadata_of(key, &path),
            body,
        })
    }

    fn open(
        &self,
        bucket: &str,
        key: &str,
    ) -> std::result::Result<Box<dyn BufRead + Send + '_>, SourceError> {
        let path = self.path_of(bucket, key)?;
        match fs::File::open(&path) {
            Ok(f) => Ok(Box::new(BufReader::with_capacity(256 * 1024, f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::NoSuchKey),
            Err(e) => Err(SourceError::Fatal(format!("{}: {e}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn test_xml_helpers_unescape() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b%2Fc</Key></Contents><Contents><Key>x&#47;y</Key></Contents><EncodingType>url</EncodingType></ListBucketResult>";
        assert_eq!(xml_all(xml, "Key"), vec!["a&b%2Fc", "x/y"]);
        assert_eq!(xml_text(xml, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(xml_text(xml, "NextMarker"), None);
    }

    #[test]
    fn test_local_dir_lists_in_key_order_and_reads_sidecar_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = dir.path().join("bucket");
        fs::create_dir_all(bucket.join("AWSLogs/1/CloudTrail-Digest/r/2026/05/01")).unwrap();
        fs::create_dir_all(bucket.join("AWSLogs/1/CloudTrail-Digest/r/2026/04/30")).unwrap();
        fs::write(
            bucket.join("AWSLogs/1/CloudTrail-Digest/r/2026/05/01/b.json.gz"),
            b"b",
        )
        .unwrap();
        fs::write(
            bucket.join("AWSLogs/1/CloudTrail-Digest/r/2026/04/30/a.json.gz"),
            b"a",
        )
        .unwrap();
        fs::write(
            bucket.join("AWSLogs/1/CloudTrail-Digest/r/2026/05/01/b.json.gz.metadata.json"),
            br#"{"Metadata":{"signature":"ab","signature-algorithm":"SHA256withRSA"}}"#,
        )
        .unwrap();
        let keys_file = dir.path().join("keys.json");
        fs::write(
            &keys_file,
            br#"{"PublicKeyList":[{"Value":"AA==","Fingerprint":"f"}]}"#,
        )
        .unwrap();
        let source = LocalDirSource::open(&bucket, None, None, None, &keys_file).unwrap();
        let mut seen = Vec::new();
        source
            .list("bucket", "AWSLogs/1/CloudTrail-Digest/r", "", &mut |k| {
                seen.push(k.to_owned());
                true
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                "AWSLogs/1/CloudTrail-Digest/r/2026/04/30/a.json.gz",
                "AWSLogs/1/CloudTrail-Digest/r/2026/05/01/b.json.gz"
            ]
        );
        let object = source
            .get(
                "bucket",
                "AWSLogs/1/CloudTrail-Digest/r/2026/05/01/b.json.gz",
            )
            .unwrap();
        assert_eq!(object.metadata["signature"], "ab");
        assert_eq!(
            source.get("bucket", "../keys.json"),
            Err(SourceError::NoSuchKey)
        );
        assert!(matches!(
            source.get("other", "x"),
            Err(SourceError::Fatal(_))
        ));
        assert_eq!(source.public_keys(Utc::now(), Utc::now()).unwrap().len(), 1);
    }
}
