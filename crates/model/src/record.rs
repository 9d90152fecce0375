//! CloudTrail records: a borrowed view for reading, and ingest normalisation.
//!
//! A record travels through Cairn as the exact JSON text its producer sent.
//! [`RecordView`] borrows the handful of fields Cairn reads (validation,
//! selectors, layout); everything else is never touched. Ingest may *add*
//! fields a record lacks (`eventID`, `recipientAccountId`, ...): they are
//! appended before the closing brace, so the original bytes stay a prefix of
//! the delivered record.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::ids::{AccountId, Region};
use crate::json_limits::{JsonLimitError, ScannedRecord, check_json_limits};
use crate::time::parse_event_time;
use crate::{DEFAULT_EVENT_CATEGORY, DEFAULT_EVENT_TYPE, DEFAULT_EVENT_VERSION};

/// The largest record ingest accepts, in bytes of JSON text.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The event type of CloudTrail Insights events, which carry their event source
/// and name inside `insightDetails` rather than at the top level.
pub const INSIGHT_EVENT_TYPE: &str = "AwsCloudTrailInsight";

/// A borrowed view of the record fields Cairn reads.
///
/// Unknown fields are skipped (but still validated as JSON). Fields are
/// `None` when absent or `null`; a field of the wrong JSON type makes parsing
/// fail, because selectors and layout could not be trusted on such a record.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RecordView<'a> {
    /// `eventVersion`.
    #[serde(
        rename = "eventVersion",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_version: Option<Cow<'a, str>>,
    /// `eventTime`, as written.
    #[serde(
        rename = "eventTime",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_time: Option<Cow<'a, str>>,
    /// `eventSource`, e.g. `s3.amazonaws.com`.
    #[serde(
        rename = "eventSource",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_source: Option<Cow<'a, str>>,
    /// `eventName`, e.g. `PutObject`.
    #[serde(
        rename = "eventName",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_name: Option<Cow<'a, str>>,
    /// `eventID`.
    #[serde(rename = "eventID", borrow, default, deserialize_with = "borrowed_str")]
    pub event_id: Option<Cow<'a, str>>,
    /// `eventType`, e.g. `AwsApiCall`.
    #[serde(
        rename = "eventType",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_type: Option<Cow<'a, str>>,
    /// `eventCategory`: `Management`, `Data`, `NetworkActivity`, `Insight`.
    #[serde(
        rename = "eventCategory",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_category: Option<Cow<'a, str>>,
    /// `awsRegion`: the region the event happened in.
    #[serde(
        rename = "awsRegion",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub aws_region: Option<Cow<'a, str>>,
    /// `recipientAccountId`: the account the event is delivered for.
    #[serde(
        rename = "recipientAccountId",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub recipient_account_id: Option<Cow<'a, str>>,
    /// `errorCode`.
    #[serde(
        rename = "errorCode",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub error_code: Option<Cow<'a, str>>,
    /// `vpcEndpointId`.
    #[serde(
        rename = "vpcEndpointId",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub vpc_endpoint_id: Option<Cow<'a, str>>,
    /// `readOnly` (a JSON boolean; the strings `"true"`/`"false"` are accepted too).
    #[serde(rename = "readOnly", default, deserialize_with = "lenient_bool")]
    pub read_only: Option<bool>,
    /// `managementEvent`.
    #[serde(rename = "managementEvent", default, deserialize_with = "lenient_bool")]
    pub management_event: Option<bool>,
    /// `sessionCredentialFromConsole`: CloudTrail writes the string `"true"`.
    #[serde(
        rename = "sessionCredentialFromConsole",
        default,
        deserialize_with = "lenient_bool"
    )]
    pub session_credential_from_console: Option<bool>,
    /// The `userIdentity` fields Cairn reads.
    #[serde(rename = "userIdentity", borrow, default)]
    pub user_identity: Option<UserIdentityView<'a>>,
    /// `resources[]`.
    #[serde(borrow, default)]
    pub resources: Option<Vec<ResourceView<'a>>>,
    /// `insightDetails`, present on Insights events only.
    #[serde(rename = "insightDetails", borrow, default)]
    pub insight_details: Option<InsightDetailsView<'a>>,
}

/// The `userIdentity` fields Cairn reads.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct UserIdentityView<'a> {
    /// `userIdentity.type` (absent on some service events).
    #[serde(rename = "type", borrow, default, deserialize_with = "borrowed_str")]
    pub identity_type: Option<Cow<'a, str>>,
    /// `userIdentity.arn`.
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub arn: Option<Cow<'a, str>>,
    /// `userIdentity.accountId`.
    #[serde(
        rename = "accountId",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub account_id: Option<Cow<'a, str>>,
    /// `userIdentity.userName` (event history's Username).
    #[serde(
        rename = "userName",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub user_name: Option<Cow<'a, str>>,
    /// `userIdentity.accessKeyId` (event history's AccessKeyId).
    #[serde(
        rename = "accessKeyId",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub access_key_id: Option<Cow<'a, str>>,
    /// `userIdentity.invokedBy`.
    #[serde(
        rename = "invokedBy",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub invoked_by: Option<Cow<'a, str>>,
    /// `userIdentity.principalId`.
    #[serde(
        rename = "principalId",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub principal_id: Option<Cow<'a, str>>,
}

/// One entry of `resources[]`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ResourceView<'a> {
    /// `type`, e.g. `AWS::S3::Object` (absent on some real records).
    #[serde(rename = "type", borrow, default, deserialize_with = "borrowed_str")]
    pub resource_type: Option<Cow<'a, str>>,
    /// `ARN`.
    #[serde(rename = "ARN", borrow, default, deserialize_with = "borrowed_str")]
    pub arn: Option<Cow<'a, str>>,
    /// `ARNPrefix`, used instead of `ARN` for e.g. S3 ListObjects.
    #[serde(
        rename = "ARNPrefix",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub arn_prefix: Option<Cow<'a, str>>,
    /// `accountId`.
    #[serde(
        rename = "accountId",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub account_id: Option<Cow<'a, str>>,
}

/// The `insightDetails` fields Cairn reads.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct InsightDetailsView<'a> {
    /// `insightDetails.eventSource`.
    #[serde(
        rename = "eventSource",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_source: Option<Cow<'a, str>>,
    /// `insightDetails.eventName`.
    #[serde(
        rename = "eventName",
        borrow,
        default,
        deserialize_with = "borrowed_str"
    )]
    pub event_name: Option<Cow<'a, str>>,
}

/// An optional string that borrows from the text where it can. serde's own
/// `borrow` reaches a `Cow` field but not one inside an `Option`, which would
/// copy every string of every record parsed.
fn borrowed_str<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(deserializer)?.map(|t| t.0))
}

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString<'a> {
        Bool(bool),
        #[serde(borrow)]
        Text(Cow<'a, str>),
    }
    match Option::<BoolOrString>::deserialize(deserializer)? {
        None => Ok(None),
        Some(BoolOrString::Bool(b)) => Ok(Some(b)),
        Some(BoolOrString::Text(t)) => match t.as_ref() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format_args!(
                "expected a boolean, found the string {other:?}"
            ))),
        },
    }
}

impl<'a> RecordView<'a> {
    /// Parses the view from a record's JSON text. Fails on invalid JSON, on a
    /// value that is not an object, and on known fields of the wrong type.
    pub fn parse(json: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }

    /// The event category, with CloudTrail's default for records that carry none.
    pub fn event_category(&self) -> &str {
        match (&self.event_category, &self.event_type) {
            (Some(c), _) => c,
            (None, Some(t)) if t == INSIGHT_EVENT_TYPE => "Insight",
            (None, _) => DEFAULT_EVENT_CATEGORY,
        }
    }

    /// The event type, with CloudTrail's default for records that carry none.
    pub fn event_type(&self) -> &str {
        self.event_type.as_deref().unwrap_or(DEFAULT_EVENT_TYPE)
    }

    /// The event source, read from `insightDetails` for Insights events.
    pub fn effective_event_source(&self) -> Option<&str> {
        self.event_source.as_deref().or_else(|| {
            self.insight_details
                .as_ref()
                .and_then(|d| d.event_source.as_deref())
        })
    }

    /// The event name, read from `insightDetails` for Insights events.
    pub fn effective_event_name(&self) -> Option<&str> {
        self.event_name.as_deref().or_else(|| {
            self.insight_details
                .as_ref()
                .and_then(|d| d.event_name.as_deref())
        })
    }

    /// `userIdentity.arn`, if any.
    pub fn user_identity_arn(&self) -> Option<&str> {
        self.user_identity.as_ref().and_then(|u| u.arn.as_deref())
    }

    /// The resources, empty when the record has none.
    pub fn resources(&self) -> &[ResourceView<'a>] {
        self.resources.as_deref().unwrap_or(&[])
    }

    /// The same view owning its strings, so it can outlive the text it was
    /// parsed from (the pipeline's router parses a record once and shares the
    /// view between sink threads). Only the few fields read are copied, never
    /// the record.
    pub fn into_owned(self) -> RecordView<'static> {
        RecordView {
            event_version: owned(self.event_version),
            event_time: owned(self.event_time),
            event_source: owned(self.event_source),
            event_name: owned(self.event_name),
            event_id: owned(self.event_id),
            event_type: owned(self.event_type),
            event_category: owned(self.event_category),
            aws_region: owned(self.aws_region),
            recipient_account_id: owned(self.recipient_account_id),
            error_code: owned(self.error_code),
            vpc_endpoint_id: owned(self.vpc_endpoint_id),
            read_only: self.read_only,
            management_event: self.management_event,
            session_credential_from_console: self.session_credential_from_console,
            user_identity: self.user_identity.map(|u| UserIdentityView {
                identity_type: owned(u.identity_type),
                arn: owned(u.arn),
                account_id: owned(u.account_id),
                user_name: owned(u.user_name),
                access_key_id: owned(u.access_key_id),
                invoked_by: owned(u.invoked_by),
                principal_id: owned(u.principal_id),
            }),
            resources: self.resources.map(|list| {
                list.into_iter()
                    .map(|r| ResourceView {
                        resource_type: owned(r.resource_type),
                        arn: owned(r.arn),
                        arn_prefix: owned(r.arn_prefix),
                        account_id: owned(r.account_id),
                    })
                    .collect()
            }),
            insight_details: self.insight_details.map(|d| InsightDetailsView {
                event_source: owned(d.event_source),
                event_name: owned(d.event_name),
            }),
        }
    }
}

fn owned(value: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    value.map(|v| Cow::Owned(v.into_owned()))
}

/// Why ingest refused one record. `code` is one of the error codes
/// CloudTrail Data documents for PutAuditEvents (`FieldNotFound`,
/// `InvalidData`, `FieldTooLong`, `InvalidRecipient`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RecordError {
    /// The error code.
    pub code: &'static str,
    /// A message for the producer.
    pub message: String,
    /// The record's text did not parse as a record: it is not JSON, or its
    /// fields have types a record's cannot have. A request whose records were
    /// found without a full parse of its body
    /// ([`crate::json_limits::split_log_file`]) may then not be JSON either:
    /// its body is parsed in full to tell.
    pub not_parsed: bool,
}

impl RecordError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            not_parsed: false,
        }
    }
}

/// What ingest fills in when a record lacks it.
#[derive(Debug, Clone)]
pub struct IngestDefaults<'a> {
    /// `recipientAccountId` for records without one: the server's account.
    pub account_id: &'a str,
    /// `awsRegion` for records without one: the server's region.
    pub region: &'a str,
}

/// A record accepted by ingest: its JSON text (the producer's bytes, plus any
/// defaulted fields appended) and its view, defaults included. Borrows from
/// the input wherever nothing had to be added.
#[derive(Debug, Clone)]
pub struct NormalizedRecord<'a> {
    /// The record's JSON text as it will be delivered.
    pub json: Cow<'a, str>,
    /// The text the view was parsed from: the producer's record, of which
    /// `json` keeps every byte but the closing brace in place.
    pub parsed_from: &'a str,
    /// The fields Cairn reads, as a parse of `json` would give them: every
    /// defaulted field (`eventID`, `recipientAccountId`, `awsRegion`, ...) is
    /// present.
    pub view: RecordView<'a>,
    /// `eventTime`, parsed.
    pub event_time: DateTime<Utc>,
}

impl NormalizedRecord<'_> {
    /// `eventID` (the producer's, or one assigned by ingest).
    pub fn event_id(&self) -> &str {
        self.view.event_id.as_deref().unwrap_or_default()
    }

    /// `recipientAccountId` (the producer's or the default).
    pub fn recipient_account_id(&self) -> &str {
        self.view
            .recipient_account_id
            .as_deref()
            .unwrap_or_default()
    }

    /// `awsRegion` (the producer's or the default).
    pub fn aws_region(&self) -> &str {
        self.view.aws_region.as_deref().unwrap_or_default()
    }

    /// Appends the view in [`crate::view_codec`]'s form, its spans into `json`.
    pub fn encode_view(&self, out: &mut Vec<u8>) {
        crate::view_codec::encode_view(&self.view, self.parsed_from, out);
    }
}

/// serde_json (with its `raw_value` feature, which Cairn uses) reads an
/// object whose key is this token as a raw value, not as an object: a record
/// holding it is valid JSON that Cairn's own readers of whole records (filter
/// patterns, queries) would fail on, so a producer could hide a record from
/// them. Found by the `normalize_record` fuzz target.
const RESERVED_KEY: &str = "$serde_json::private::RawValue";

/// Refuses a record holding [`RESERVED_KEY`] as a key, however escaped. The
/// token can only be spelled without `::private::` through `\u` escapes, so
/// the full check runs only on text holding one or the other (rare in real
/// records).
fn check_no_reserved_key(text: &str) -> Result<(), RecordError> {
    if !text.contains("::private::") && !text.contains("\\u") {
        return Ok(());
    }
    if serde_json::from_str::<serde_json::Value>(text).is_err() {
        return Err(RecordError::new(
            "InvalidData",
            format!("Record is not valid: the key {RESERVED_KEY:?} is reserved."),
        ));
    }
    Ok(())
}

/// Validates one record and appends the fields CloudTrail would have set.
///
/// Required: a JSON object with `eventTime` (ISO 8601, UTC), `eventSource`
/// and `eventName` (for Insights events, inside `insightDetails`). Defaulted
/// when absent: `eventID` (a new UUID), `recipientAccountId`, `awsRegion`,
/// `eventCategory` (`Management`), `eventType` (`AwsApiCall`), `eventVersion`.
pub fn normalize_record<'a>(
    raw: &'a str,
    defaults: &IngestDefaults<'a>,
) -> Result<NormalizedRecord<'a>, RecordError> {
    normalize(raw, None, defaults)
}

/// What a scan of a record already established.
struct Scanned<'s> {
    limits: &'s Result<(), JsonLimitError>,
    dollar_or_unicode_escape: bool,
}

/// [`normalize_record`] for a record found by
/// [`crate::json_limits::split_log_file`], which has checked its limits.
pub fn normalize_scanned<'a>(
    record: &ScannedRecord<'a>,
    defaults: &IngestDefaults<'a>,
) -> Result<NormalizedRecord<'a>, RecordError> {
    let scanned = Scanned {
        limits: &record.limits,
        dollar_or_unicode_escape: record.dollar_or_unicode_escape,
    };
    normalize(record.text, Some(scanned), defaults)
}

/// Validates `raw`, with what a scan found when it was scanned.
fn normalize<'a>(
    raw: &'a str,
    scanned: Option<Scanned<'_>>,
    defaults: &IngestDefaults<'a>,
) -> Result<NormalizedRecord<'a>, RecordError> {
    if raw.len() > MAX_RECORD_BYTES {
        return Err(RecordError::new(
            "FieldTooLong",
            format!(
                "Record is {} bytes; the maximum is {MAX_RECORD_BYTES} bytes.",
                raw.len()
            ),
        ));
    }
    let trimmed = raw.trim();
    if !trimmed.starts_with('{') {
        return Err(RecordError::new(
            "InvalidData",
            "Record must be a JSON object.",
        ));
    }
    let view = RecordView::parse(trimmed).map_err(|e| RecordError {
        not_parsed: true,
        ..RecordError::new("InvalidData", format!("Record is not valid: {e}"))
    })?;
    check_present_not_null(trimmed, &view)?;
    match &scanned {
        Some(scanned) => scanned.limits.clone(),
        None => check_json_limits(trimmed),
    }
    .map_err(|e| RecordError::new("InvalidData", format!("Record is not valid: {e}.")))?;
    // The reserved key is spelled literally (a string starting with `$`) or
    // with `\u` escapes; a scan has seen whether either occurs.
    if scanned.is_none_or(|s| s.dollar_or_unicode_escape) {
        check_no_reserved_key(trimmed)?;
    }

    let event_time_text = view.event_time.as_deref().ok_or_else(|| {
        RecordError::new(
            "FieldNotFound",
            "Record is missing required field eventTime.",
        )
    })?;
    let event_time = parse_event_time(event_time_text).ok_or_else(|| {
        RecordError::new(
            "InvalidData",
            format!("eventTime {event_time_text:?} is not an ISO 8601 time in UTC."),
        )
    })?;
    if view.effective_event_source().is_none() {
        return Err(RecordError::new(
            "FieldNotFound",
            "Record is missing required field eventSource.",
        ));
    }
    if view.effective_event_name().is_none() {
        return Err(RecordError::new(
            "FieldNotFound",
            "Record is missing required field eventName.",
        ));
    }
    for (name, value) in [
        ("eventID", &view.event_id),
        ("recipientAccountId", &view.recipient_account_id),
        ("awsRegion", &view.aws_region),
    ] {
        if value.as_deref().is_some_and(str::is_empty) {
            return Err(RecordError::new(
                "InvalidData",
                format!("{name} must not be empty."),
            ));
        }
    }
    // Both become parts of object keys (`.../<account>/CloudTrail/<region>/...`):
    // anything but an account ID and a region name could choose other paths.
    if let Some(account) = view.recipient_account_id.as_deref()
        && AccountId::new(account).is_err()
    {
        return Err(RecordError::new(
            "InvalidData",
            format!(
                "recipientAccountId {:?} is not a 12-digit account ID.",
                truncated(account)
            ),
        ));
    }
    if let Some(region) = view.aws_region.as_deref()
        && Region::new(region).is_err()
    {
        return Err(RecordError::new(
            "InvalidData",
            format!(
                "awsRegion {:?} is not a region name (lowercase letters, digits and hyphens, at most 64 characters).",
                truncated(region)
            ),
        ));
    }

    let mut appended = String::new();
    let mut append = |key: &str, value: &str| {
        appended.push_str(",\"");
        appended.push_str(key);
        appended.push_str("\":");
        // Values are ours (UUIDs, account ids, region names, constants), but go
        // through the JSON encoder anyway so no input can break the framing.
        appended.push_str(&serde_json::Value::from(value).to_string());
    };
    // The view of the record as stored: what a parse of the final JSON would
    // give, so the pipeline can use it instead of parsing again.
    let mut view = view;
    if view.event_version.is_none() {
        append("eventVersion", DEFAULT_EVENT_VERSION);
        view.event_version = Some(Cow::Borrowed(DEFAULT_EVENT_VERSION));
    }
    if view.event_category.is_none() {
        let category = view.event_category().to_owned();
        append("eventCategory", &category);
        view.event_category = Some(Cow::Owned(category));
    }
    if view.event_id.is_none() {
        let id = uuid::Uuid::new_v4().to_string();
        append("eventID", &id);
        view.event_id = Some(Cow::Owned(id));
    }
    if view.event_type.is_none() {
        append("eventType", DEFAULT_EVENT_TYPE);
        view.event_type = Some(Cow::Borrowed(DEFAULT_EVENT_TYPE));
    }
    if view.aws_region.is_none() {
        append("awsRegion", defaults.region);
        view.aws_region = Some(Cow::Borrowed(defaults.region));
    }
    if view.recipient_account_id.is_none() {
        append("recipientAccountId", defaults.account_id);
        view.recipient_account_id = Some(Cow::Borrowed(defaults.account_id));
    }

    let json = if appended.is_empty() {
        Cow::Borrowed(trimmed)
    } else {
        // Insert before the closing brace; an empty object takes no comma.
        let body = &trimmed[..trimmed.len() - 1];
        let is_empty_object = body[1..].trim().is_empty();
        let mut out = String::with_capacity(trimmed.len() + appended.len());
        out.push_str(body);
        out.push_str(if is_empty_object {
            &appended[1..]
        } else {
            &appended
        });
        out.push('}');
        Cow::Owned(out)
    };
    Ok(NormalizedRecord {
        json,
        parsed_from: trimmed,
        view,
        event_time,
    })
}

/// At most 80 characters of a refused value, for error messages.
fn truncated(value: &str) -> String {
    value.chars().take(80).collect()
}

/// A defaulted field that is present with a `null` value cannot be appended
/// again (the record would carry the key twice), so such a record is refused.
fn check_present_not_null(json: &str, view: &RecordView) -> Result<(), RecordError> {
    for (name, value) in [
        ("eventID", view.event_id.is_some()),
        ("recipientAccountId", view.recipient_account_id.is_some()),
        ("awsRegion", view.aws_region.is_some()),
        ("eventCategory", view.event_category.is_some()),
        ("eventType", view.event_type.is_some()),
        ("eventVersion", view.event_version.is_some()),
    ] {
        if !value && json.contains(&format!("\"{name}\"")) && has_top_level_null(json, name) {
            return Err(RecordError::new(
                "InvalidData",
                format!("{name} must be a string, not null."),
            ));
        }
    }
    Ok(())
}

fn has_top_level_null(json: &str, name: &str) -> bool {
    // Rare path (the key text appears but the view saw no value): a full
    // parse settles whether the top-level key exists with a null value.
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
        .map(|m| m.get(name).is_some_and(serde_json::Value::is_null))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: IngestDefaults<'static> = IngestDefaults {
        account_id: "123456789012",
        region: "us-east-1",
    };

    /// The view ingest stores decodes, from the final JSON, to exactly what a
    /// parse of that JSON gives: the pipeline uses it instead of parsing.
    fn assert_stored_view_is_the_parsed_one(n: &NormalizedRecord<'_>) {
        let mut bytes = Vec::new();
        n.encode_view(&mut bytes);
        let stored = crate::view_codec::decode_view(&bytes, &n.json).unwrap();
        let parsed = RecordView::parse(&n.json).unwrap();
        assert_eq!(format!("{stored:?}"), format!("{parsed:?}"), "{}", n.json);
    }

    /// Strings without escapes borrow from the text (no copy per field, per
    /// record); one with an escape is decoded into its own string.
    #[test]
    fn test_strings_borrow_from_the_text() {
        let raw = r#"{"eventName":"GetObject","userIdentity":{"arn":"a\/b"},"resources":[{"ARN":"arn:aws:s3:::b/k"}]}"#;
        let view = RecordView::parse(raw).unwrap();
        assert!(matches!(view.event_name, Some(Cow::Borrowed("GetObject"))));
        assert!(matches!(
            view.resources()[0].arn,
            Some(Cow::Borrowed("arn:aws:s3:::b/k"))
        ));
        let arn = view.user_identity.and_then(|u| u.arn);
        assert!(
            matches!(arn, Some(Cow::Owned(ref a)) if a == "a/b"),
            "{arn:?}"
        );
    }

    #[test]
    fn test_complete_record_is_kept_byte_for_byte() {
        let raw = r#"{"eventVersion":"1.08","eventTime":"2023-07-10T11:42:18Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"e1","eventType":"AwsApiCall","eventCategory":"Data","recipientAccountId":"123837392027","requestParameters":{"FromTime":1.688560107857E9}}"#;
        let n = normalize_record(raw, &DEFAULTS).unwrap();
        assert_eq!(n.json, raw);
        assert_eq!(n.event_id(), "e1");
        assert_eq!(n.recipient_account_id(), "123837392027");
        assert_stored_view_is_the_parsed_one(&n);
    }

    #[test]
    fn test_missing_fields_are_appended() {
        let raw = r#"{"eventTime":"2014-03-06T21:22:54Z","eventSource":"ec2.amazonaws.com","eventName":"StartInstances"}"#;
        let n = normalize_record(raw, &DEFAULTS).unwrap();
        assert!(n.json.starts_with(&raw[..raw.len() - 1]));
        let v: serde_json::Value = serde_json::from_str(&n.json).unwrap();
        assert_eq!(v["eventID"], n.event_id());
        assert_eq!(v["recipientAccountId"], "123456789012");
        assert_eq!(v["awsRegion"], "us-east-1");
        assert_eq!(v["eventCategory"], "Management");
        assert_eq!(v["eventType"], "AwsApiCall");
        assert_eq!(v["eventVersion"], DEFAULT_EVENT_VERSION);
        assert_stored_view_is_the_parsed_one(&n);
        let empty_defaults = normalize_record(
            r#"{ "eventTime":"2014-03-06T21:22:54Z","eventSource":"e\u00632.amazonaws.com","eventName":"A"}"#,
            &DEFAULTS,
        )
        .unwrap();
        assert_stored_view_is_the_parsed_one(&empty_defaults);
    }

    #[test]
    fn test_insight_records_take_source_from_details() {
        let raw = r#"{"eventVersion":"1.07","eventTime":"2019-10-15T21:13:00Z","awsRegion":"us-east-1","eventID":"x","eventType":"AwsCloudTrailInsight","recipientAccountId":"123456789012","insightDetails":{"eventSource":"autoscaling.amazonaws.com","eventName":"CompleteLifecycleAction"}}"#;
        let n = normalize_record(raw, &DEFAULTS).unwrap();
        let v: serde_json::Value = serde_json::from_str(&n.json).unwrap();
        assert_eq!(v["eventCategory"], "Insight");
        assert_stored_view_is_the_parsed_one(&n);
    }

    #[test]
    fn test_refusals() {
        let cases = [
            (r#"{"eventSource":"a","eventName":"b"}"#, "FieldNotFound"),
            (
                r#"{"eventTime":"2019-10-15T21:13:00Z","eventName":"b"}"#,
                "FieldNotFound",
            ),
            (
                r#"{"eventTime":"2019-10-15T21:13:00Z","eventSource":"a"}"#,
                "FieldNotFound",
            ),
            (
                r#"{"eventTime":"nope","eventSource":"a","eventName":"b"}"#,
                "InvalidData",
            ),
            (
                r#"{"eventTime":12,"eventSource":"a","eventName":"b"}"#,
                "InvalidData",
            ),
            (
                r#"{"eventTime":"2019-10-15T21:13:00Z","eventSource":"a","eventName":"b","readOnly":"maybe"}"#,
                "InvalidData",
            ),
            (
                r#"{"eventTime":"2019-10-15T21:13:00Z","eventSource":"a","eventName":"b","eventID":null}"#,
                "InvalidData",
            ),
            (
                r#"{"eventTime":"2019-10-15T21:13:00Z","eventSource":"a","eventName":"b","eventID":""}"#,
                "InvalidData",
            ),
            (r#"[1,2]"#, "InvalidData"),
            (r#"{"eventTime":"2019-10-15T21:13:00Z""#, "InvalidData"),
        ];
        for (raw, code) in cases {
            let err = normalize_record(raw, &DEFAULTS).unwrap_err();
            assert_eq!(err.code, code, "{raw}: {err}");
        }
    }

    /// Every real record in the shared corpus is accepted, and its bytes are a
    /// prefix of what will be delivered.
    #[test]
    fn test_real_records_are_accepted_and_kept() {
        // The corpus lives in the shared folder beside the repository.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/real-cloudtrail");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the shared corpus must sit beside the repository: {e}"));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let n = normalize_record(line, &DEFAULTS).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(n.json.starts_with(&line[..line.len() - 1]));
                assert_stored_view_is_the_parsed_one(&n);
                count += 1;
            }
        }
        assert_eq!(count, 3234);
    }

    /// Issue 11: values that become parts of object keys are refused at the door.
    #[test]
    fn issue_11_region_and_account_that_would_choose_key_paths_are_refused() {
        let base = r#""eventTime":"2023-07-10T11:42:18Z","eventSource":"s3.amazonaws.com","eventName":"GetObject""#;
        let long = "a".repeat(300);
        for region in [".", "../../etc", "a/b", long.as_str(), "US-EAST-1", "-x"] {
            let raw = format!(
                r#"{{{base},"awsRegion":{}}}"#,
                serde_json::Value::from(region)
            );
            let e = normalize_record(&raw, &DEFAULTS).unwrap_err();
            assert_eq!(e.code, "InvalidData", "{region}");
            assert!(e.message.contains("awsRegion"), "{e}");
        }
        for account in [
            "12345678901",
            "1234567890123",
            "../123456789",
            "12345678901a",
        ] {
            let raw = format!(r#"{{{base},"recipientAccountId":"{account}"}}"#);
            let e = normalize_record(&raw, &DEFAULTS).unwrap_err();
            assert_eq!(e.code, "InvalidData", "{account}");
            assert!(e.message.contains("recipientAccountId"), "{e}");
        }
        // Anonymised region names of real exported logs stay accepted.
        let raw = format!(r#"{{{base},"awsRegion":"sagov-westsouth-1r"}}"#);
        assert!(normalize_record(&raw, &DEFAULTS).is_ok());
    }

    /// serde_json's raw-value token as a key, plain or escaped, is refused;
    /// `\u` escapes elsewhere stay accepted.
    #[test]
    fn test_the_serde_json_raw_value_token_is_refused_as_a_key() {
        let base = r#""eventTime":"2023-07-10T11:42:18Z","eventSource":"s3.amazonaws.com","eventName":"GetObject""#;
        // Found in a log file's text by a scan, or given alone: the same answer
        // (eventIDs differ, being new).
        let both = |raw: &str| {
            let body = format!(r#"{{"Records":[{raw}]}}"#);
            let scanned = crate::json_limits::split_log_file(&body).unwrap();
            let from_scan = normalize_scanned(&scanned[0], &DEFAULTS).map(|_| ());
            let alone = normalize_record(raw, &DEFAULTS).map(|_| ());
            assert_eq!(from_scan, alone, "{raw}");
            alone
        };
        for key in [
            "$serde_json::private::RawValue",
            "$serde_json\\u003a\\u003aprivate::RawValue",
            "$serde_json::pr\\u0069vate::RawValue",
            "\\u0024serde_json::private::RawValue",
        ] {
            let raw = format!(r#"{{{base},"userIdentity":{{"{key}":null}}}}"#);
            let e = both(&raw).unwrap_err();
            assert_eq!(e.code, "InvalidData", "{key}");
            assert!(e.message.contains("reserved"), "{e}");
        }
        let raw = format!(r#"{{{base},"userAgent":"caf\u00e9 \u2028"}}"#);
        assert!(both(&raw).is_ok());
        let raw = format!(r#"{{{base},"note":"::private:: is fine as a value"}}"#);
        assert!(both(&raw).is_ok());
    }

    /// Issue 11: JSON that readers of the log file cannot read is refused.
    #[test]
    fn issue_11_unreadable_json_is_refused() {
        let base = r#""eventTime":"2023-07-10T11:42:18Z","eventSource":"s3.amazonaws.com","eventName":"GetObject""#;
        let deep = format!(
            r#"{{{base},"requestParameters":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        for raw in [
            deep,
            format!(r#"{{{base},"requestParameters":{{"n":1e999999999}}}}"#),
            format!(r#"{{{base},"requestParameters":{{"s":"\ud800"}}}}"#),
        ] {
            let e = normalize_record(&raw, &DEFAULTS).unwrap_err();
            assert_eq!(e.code, "InvalidData", "{}", &raw[..raw.len().min(200)]);
        }
    }

    #[test]
    fn test_view_reads_selector_fields() {
        let raw = r#"{"eventTime":"2019-10-15T21:13:00Z","eventSource":"s3.amazonaws.com","eventName":"PutObject","readOnly":false,"sessionCredentialFromConsole":"true","userIdentity":{"arn":"arn:aws:iam::1:user/a"},"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"},{"ARN":"x"}]}"#;
        let v = RecordView::parse(raw).unwrap();
        assert_eq!(v.read_only, Some(false));
        assert_eq!(v.session_credential_from_console, Some(true));
        assert_eq!(v.user_identity_arn(), Some("arn:aws:iam::1:user/a"));
        assert_eq!(v.resources().len(), 2);
        assert_eq!(v.resources()[1].resource_type, None);
        assert_eq!(v.event_category(), "Management");
    }
}
