//! The CloudTrail API (JSON 1.1, `X-Amz-Target: ...CloudTrail_20131101.<Op>`):
//! trails, their status and their event selectors.
//!
//! Shapes and error codes follow botocore's `cloudtrail` model. botocore checks
//! only required members, types and minimums, so every maximum, pattern and
//! enum rule is enforced here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use cairn_meta::{Tag, TrailConfig, TrailRecord};
use cairn_model::{AccountId, Region, TrailArn, TrailName};
use cairn_pipeline::envelope::TrailChange;
use cairn_pipeline::sink::selectors_to_stored;
use cairn_select::{AdvancedEventSelector, EventSelector, SelectorTarget, Selectors};

use crate::error::AwsError;
use crate::state::{AppState, RequestContext};

/// The target prefixes botocore sends for CloudTrail operations.
const TARGET_PREFIXES: [&str; 2] = [
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
    "CloudTrail_20131101.",
];

/// Trails one account may have in one region (CloudTrail's quota).
const MAX_TRAILS_PER_REGION: usize = 5;

/// Handles one CloudTrail API call.
pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    target: Option<&str>,
    body: &[u8],
) -> Response {
    let result = dispatch(state, ctx, target, body).await;
    match result {
        Ok(value) => json_ok(&value, &ctx.request_id),
        Err(e) => e.into_json_response(&ctx.request_id),
    }
}

/// A JSON 1.1 success response.
pub fn json_ok(value: &Value, request_id: &str) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    response
}

async fn dispatch(
    state: &AppState,
    ctx: &RequestContext,
    target: Option<&str>,
    body: &[u8],
) -> Result<Value, AwsError> {
    let target = target.ok_or_else(|| {
        AwsError::client("UnknownOperationException", "Missing X-Amz-Target header.")
    })?;
    let operation = TARGET_PREFIXES
        .iter()
        .find_map(|p| target.strip_prefix(p))
        .ok_or_else(|| {
            AwsError::client(
                "UnknownOperationException",
                format!("Unknown operation {target}."),
            )
        })?;
    let input: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            AwsError::client(
                "SerializationException",
                format!("Request body is not a JSON object: {e}"),
            )
        })?
    };
    let api = Api { state, ctx };
    match operation {
        "CreateTrail" => api.create_trail(input).await,
        "GetTrail" => api.get_trail(input),
        "DescribeTrails" => api.describe_trails(input),
        "ListTrails" => api.list_trails(input),
        "UpdateTrail" => api.update_trail(input).await,
        "DeleteTrail" => api.delete_trail(input).await,
        "StartLogging" => api.set_logging(input, true).await,
        "StopLogging" => api.set_logging(input, false).await,
        "GetTrailStatus" => api.get_trail_status(input),
        "PutEventSelectors" => api.put_event_selectors(input).await,
        "GetEventSelectors" => api.get_event_selectors(input),
        "GetInsightSelectors" => api.get_insight_selectors(input),
        "AddTags" => api.add_tags(input),
        "RemoveTags" => api.remove_tags(input),
        "ListTags" => api.list_tags(input),
        "ListPublicKeys" => api.list_public_keys(input),
        other => Err(AwsError::client(
            "UnknownOperationException",
            format!("Operation {other} is not supported by this server."),
        )),
    }
}

/// Reads input members with the type checks a JSON protocol server makes.
struct Input(Map<String, Value>);

impl Input {
    fn string(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(serialization(name, "a string")),
        }
    }

    fn required_string(&self, name: &str) -> Result<String, AwsError> {
        self.string(name)?.ok_or_else(|| {
            AwsError::client(
                "InvalidParameterException",
                format!("Missing required parameter {name}."),
            )
        })
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(serialization(name, "a boolean")),
        }
    }

    /// A timestamp member: epoch seconds (what botocore sends) or an ISO 8601 string.
    fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>, AwsError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                let seconds = n
                    .as_f64()
                    .filter(|s| s.is_finite() && s.abs() < 1e13)
                    .ok_or_else(|| serialization(name, "a timestamp"))?;
                DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64)
                    .map(Some)
                    .ok_or_else(|| serialization(name, "a timestamp"))
            }
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| serialization(name, "a timestamp")),
            Some(_) => Err(serialization(name, "a timestamp")),
        }
    }

    fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }
}

fn serialization(name: &str, expected: &str) -> AwsError {
    AwsError::client(
        "SerializationException",
        format!("{name} must be {expected}."),
    )
}

fn epoch(t: Option<DateTime<Utc>>) -> Value {
    // The AWS CLI prints timestamps as they arrive on the wire: epoch seconds, as AWS sends.
    t.map_or(Value::Null, |t| json!(t.timestamp_millis() as f64 / 1000.0))
}

fn iso(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    })
}

fn strip_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

fn trail_shape(config: &TrailConfig) -> Value {
    strip_nulls(json!({
        "Name": config.name,
        "S3BucketName": config.s3_bucket_name,
        "S3KeyPrefix": config.s3_key_prefix,
        "SnsTopicName": config.sns_topic_name,
        "IncludeGlobalServiceEvents": config.include_global_service_events,
        "IsMultiRegionTrail": config.is_multi_region_trail,
        "HomeRegion": config.home_region,
        "TrailARN": config.arn,
        "LogFileValidationEnabled": config.log_file_validation_enabled,
        "CloudWatchLogsLogGroupArn": config.cloud_watch_logs_log_group_arn,
        "CloudWatchLogsRoleArn": config.cloud_watch_logs_role_arn,
        "KmsKeyId": config.kms_key_id,
        "HasCustomEventSelectors": config.has_custom_event_selectors,
        "HasInsightSelectors": config.insight_selectors.is_some(),
        "IsOrganizationTrail": config.is_organization_trail,
    }))
}

/// CreateTrail's and UpdateTrail's answer: the Trail shape without the
/// members those responses do not have.
fn create_update_shape(config: &TrailConfig) -> Value {
    let mut shape = trail_shape(config);
    if let Value::Object(map) = &mut shape {
        for absent in [
            "HomeRegion",
            "HasCustomEventSelectors",
            "HasInsightSelectors",
        ] {
            map.remove(absent);
        }
    }
    shape
}

/// S3's bucket naming rules.
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// The mutable trail settings common to CreateTrail and UpdateTrail.
struct TrailSettings<'a> {
    input: &'a Input,
}

struct Api<'a> {
    state: &'a AppState,
    ctx: &'a RequestContext,
}

impl Api<'_> {
    fn account(&self) -> &str {
        &self.state.settings.account_id
    }

    fn region(&self) -> &str {
        &self.state.settings.region
    }

    fn not_found(&self, name: &str) -> AwsError {
        AwsError::client(
            "TrailNotFoundException",
            format!("Unknown trail: {name} for the user: {}", self.account()),
        )
    }

    /// Resolves a trail name or ARN to its ARN (validating either form).
    fn resolve_arn(&self, name_or_arn: &str) -> Result<String, AwsError> {
        if TrailArn::looks_like_arn(name_or_arn) {
            let arn = TrailArn::parse(name_or_arn).map_err(|_| {
                AwsError::client(
                    "CloudTrailARNInvalidException",
                    format!("Invalid trail ARN: {name_or_arn}"),
                )
            })?;
            return Ok(arn.to_string());
        }
        let name = TrailName::new(name_or_arn)
            .map_err(|e| AwsError::client("InvalidTrailNameException", e.to_string()))?;
        Ok(self.arn_for(&name))
    }

    fn arn_for(&self, name: &TrailName) -> String {
        // Settings are validated at start-up; these cannot fail.
        match (Region::new(self.region()), AccountId::new(self.account())) {
            (Ok(region), Ok(account)) => TrailArn::new(region, account, name.clone()).to_string(),
            _ => format!(
                "arn:aws:cloudtrail:{}:{}:trail/{name}",
                self.region(),
                self.account()
            ),
        }
    }

    fn load(&self, name_or_arn: &str) -> Result<TrailRecord, AwsError> {
        let arn = self.resolve_arn(name_or_arn)?;
        self.state
            .meta
            .trail(&arn)
            .map_err(AwsError::internal)?
            .ok_or_else(|| self.not_found(name_or_arn))
    }

    /// Applies and validates the settings CreateTrail and UpdateTrail share.
    fn apply_settings(
        &self,
        config: &mut TrailConfig,
        settings: &TrailSettings<'_>,
    ) -> Result<(), AwsError> {
        let input = settings.input;
        if let Some(bucket) = input.string("S3BucketName")? {
            if !valid_bucket_name(&bucket) {
                return Err(AwsError::client(
                    "InvalidS3BucketNameException",
                    format!("Bucket name is not valid: {bucket}"),
                ));
            }
            if self
                .state
                .meta
                .bucket(&bucket)
                .map_err(AwsError::internal)?
                .is_none()
            {
                return Err(AwsError::client(
                    "S3BucketDoesNotExistException",
                    format!("S3 bucket {bucket} does not exist!"),
                ));
            }
            config.s3_bucket_name = bucket;
        }
        if let Some(prefix) = input.string("S3KeyPrefix")? {
            if prefix.chars().count() > 200 {
                return Err(AwsError::client(
                    "InvalidS3PrefixException",
                    "S3 key prefix must be at most 200 characters.",
                ));
            }
            config.s3_key_prefix = (!prefix.is_empty()).then_some(prefix);
        }
        if let Some(topic) = input.string("SnsTopicName")? {
            if topic.is_empty() {
                config.sns_topic_name = None;
            } else {
                // No SNS topics exist on this server yet, so none can be the target.
                return Err(AwsError::client(
                    "InsufficientSnsTopicPolicyException",
                    "SNS Topic does not exist or the topic policy is incorrect!",
                ));
            }
        }
        if let Some(group) = input.string("CloudWatchLogsLogGroupArn")? {
            if group.is_empty() {
                config.cloud_watch_logs_log_group_arn = None;
                config.cloud_watch_logs_role_arn = None;
            } else {
                return Err(AwsError::client(
                    "InvalidCloudWatchLogsLogGroupArnException",
                    format!("Log group {group} does not exist."),
                ));
            }
        }
        if input
            .string("CloudWatchLogsRoleArn")?
            .is_some_and(|r| !r.is_empty())
            && config.cloud_watch_logs_log_group_arn.is_none()
        {
            return Err(AwsError::client(
                "InvalidCloudWatchLogsRoleArnException",
                "A CloudWatch Logs role ARN requires a CloudWatch Logs log group ARN.",
            ));
        }
        if let Some(key) = input.string("KmsKeyId")? {
            if key.is_empty() {
                config.kms_key_id = None;
            } else {
                return Err(AwsError::client(
                    "KmsKeyNotFoundException",
                    format!("KMS key {key} does not exist."),
                ));
            }
        }
        if let Some(v) = input.bool("IncludeGlobalServiceEvents")? {
            config.include_global_service_events = v;
        }
        if let Some(v) = input.bool("IsMultiRegionTrail")? {
            config.is_multi_region_trail = v;
        }
        if let Some(v) = input.bool("EnableLogFileValidation")? {
            config.log_file_validation_enabled = v;
        }
        if let Some(v) = input.bool("IsOrganizationTrail")? {
            if v {
                let Some(org) = &self.state.settings.organization else {
                    return Err(AwsError::client(
                        "OrganizationsNotInUseException",
                        "This account is not a member of an organization.",
                    ));
                };
                if org.management_account != self.ctx.account_id {
                    return Err(AwsError::client(
                        "NotOrganizationMasterAccountException",
                        format!(
                            "The request was rejected because account {} is not the management account of organization {}.",
                            self.ctx.account_id, org.id
                        ),
                    ));
                }
            }
            config.is_organization_trail = v;
        }
        if config.is_multi_region_trail && !config.include_global_service_events {
            return Err(AwsError::client(
                "InvalidParameterCombinationException",
                "Multi-Region trail must include global service events.",
            ));
        }
        Ok(())
    }

    async fn create_trail(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let raw_name = input.required_string("Name")?;
        let name = TrailName::new(&raw_name)
            .map_err(|e| AwsError::client("InvalidTrailNameException", e.to_string()))?;
        input.required_string("S3BucketName")?;
        let tags = parse_tags(input.value("TagsList"))?;
        let arn = self.arn_for(&name);
        let mut config = TrailConfig {
            name: name.to_string(),
            arn: arn.clone(),
            account_id: self.account().to_owned(),
            home_region: self.region().to_owned(),
            s3_bucket_name: String::new(),
            s3_key_prefix: None,
            sns_topic_name: None,
            include_global_service_events: true,
            is_multi_region_trail: false,
            log_file_validation_enabled: false,
            cloud_watch_logs_log_group_arn: None,
            cloud_watch_logs_role_arn: None,
            kms_key_id: None,
            is_organization_trail: false,
            selectors: selectors_to_stored(&Selectors::default_for_new_trail()),
            has_custom_event_selectors: false,
            insight_selectors: None,
            tags,
            created_at: Utc::now(),
        };
        self.apply_settings(&mut config, &TrailSettings { input: &input })?;
        let existing = self.state.meta.trails().map_err(AwsError::internal)?;
        if existing.iter().any(|t| t.config.arn == arn) {
            return Err(AwsError::client(
                "TrailAlreadyExistsException",
                format!(
                    "Trail {name} already exists for customer: {}",
                    self.account()
                ),
            ));
        }
        if existing
            .iter()
            .filter(|t| t.config.home_region == self.region())
            .count()
            >= MAX_TRAILS_PER_REGION
        {
            return Err(AwsError::client(
                "MaximumNumberOfTrailsExceededException",
                format!(
                    "User: {} already has {MAX_TRAILS_PER_REGION} trails in {}.",
                    self.account(),
                    self.region()
                ),
            ));
        }
        // One pipeline call writes the WAL, then the metastore row derived from it.
        self.state
            .pipeline
            .change_trail(&arn, TrailChange::Create(Box::new(config.clone())))
            .await
            .map_err(pipeline_error)?;
        Ok(create_update_shape(&config))
    }

    fn get_trail(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("Name")?)?;
        Ok(json!({"Trail": trail_shape(&trail.config)}))
    }

    fn describe_trails(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let names: Vec<String> = match input.get("trailNameList") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| serialization("trailNameList", "a list of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(serialization("trailNameList", "a list of strings")),
        };
        let all = self.state.meta.trails().map_err(AwsError::internal)?;
        let list: Vec<Value> = if names.is_empty() {
            all.iter().map(|t| trail_shape(&t.config)).collect()
        } else {
            // Names that match nothing are left out, as CloudTrail does.
            let mut out = Vec::new();
            for name in &names {
                let arn = self.resolve_arn(name)?;
                if let Some(t) = all.iter().find(|t| t.config.arn == arn) {
                    out.push(trail_shape(&t.config));
                }
            }
            out
        };
        Ok(json!({"trailList": list}))
    }

    fn list_trails(&self, _input: Map<String, Value>) -> Result<Value, AwsError> {
        let all = self.state.meta.trails().map_err(AwsError::internal)?;
        let trails: Vec<Value> = all
            .iter()
            .map(|t| json!({"TrailARN": t.config.arn, "Name": t.config.name, "HomeRegion": t.config.home_region}))
            .collect();
        Ok(json!({"Trails": trails}))
    }

    async fn update_trail(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("Name")?)?;
        let mut config = trail.config.clone();
        self.apply_settings(&mut config, &TrailSettings { input: &input })?;
        self.configure(config.clone()).await?;
        Ok(create_update_shape(&config))
    }

    /// Stores a new configuration and hands it to the trail's sink through the WAL.
    async fn configure(&self, config: TrailConfig) -> Result<(), AwsError> {
        self.state
            .pipeline
            .change_trail(
                &config.arn,
                TrailChange::Configure(Box::new(config.clone())),
            )
            .await
            .map_err(pipeline_error)
    }

    async fn delete_trail(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("Name")?)?;
        self.state
            .pipeline
            .change_trail(&trail.config.arn, TrailChange::Delete)
            .await
            .map_err(pipeline_error)?;
        Ok(json!({}))
    }

    async fn set_logging(
        &self,
        input: Map<String, Value>,
        logging: bool,
    ) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("Name")?)?;
        let change = if logging {
            TrailChange::StartLogging
        } else {
            TrailChange::StopLogging
        };
        self.state
            .pipeline
            .change_trail(&trail.config.arn, change)
            .await
            .map_err(pipeline_error)?;
        Ok(json!({}))
    }

    /// The digest signing keys of the request's region that sign at some
    /// instant of `[StartTime, EndTime]` (both default to now).
    fn list_public_keys(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let now = Utc::now();
        let start = input.timestamp("StartTime")?.unwrap_or(now);
        let end = input.timestamp("EndTime")?.unwrap_or(now);
        if start > end {
            return Err(AwsError::client(
                "InvalidTimeRangeException",
                "Occurs if the timestamp values are not valid. Either the start time occurs after the end time, or the time range is outside the range of possible values.",
            ));
        }
        let keys = self
            .state
            .pipeline
            .keyring()
            .public_keys(&self.ctx.region, start, end)
            .map_err(|e| AwsError::internal(format!("reading the digest keyring: {e}")))?;
        let list: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({
                    "Value": k.value,
                    "ValidityStartTime": epoch(Some(k.valid_from)),
                    "ValidityEndTime": epoch(Some(k.valid_until)),
                    "Fingerprint": k.fingerprint,
                })
            })
            .collect();
        Ok(json!({ "PublicKeyList": list }))
    }

    fn get_trail_status(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("Name")?)?;
        let s = &trail.status;
        Ok(strip_nulls(json!({
            "IsLogging": s.is_logging,
            "LatestDeliveryError": s.latest_delivery_error,
            "LatestDeliveryTime": epoch(s.latest_delivery_time),
            "StartLoggingTime": epoch(s.start_logging_time),
            "StopLoggingTime": epoch(s.stop_logging_time),
            "LatestDigestDeliveryTime": epoch(s.latest_digest_delivery_time),
            "LatestDigestDeliveryError": s.latest_digest_delivery_error,
            "LatestDeliveryAttemptTime": iso(s.latest_delivery_attempt_time),
            "LatestDeliveryAttemptSucceeded": iso(s.latest_delivery_attempt_succeeded),
            "TimeLoggingStarted": iso(s.start_logging_time),
            "TimeLoggingStopped": iso(s.stop_logging_time),
        })))
    }

    async fn put_event_selectors(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("TrailName")?)?;
        let selectors = match (
            input.value("EventSelectors"),
            input.value("AdvancedEventSelectors"),
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid_selectors(
                    "You cannot specify both EventSelectors and AdvancedEventSelectors in a single request.".to_owned(),
                ));
            }
            (None, None) => {
                return Err(invalid_selectors(
                    "You must specify either EventSelectors or AdvancedEventSelectors.".to_owned(),
                ));
            }
            (Some(basic), None) => {
                let basic: Vec<EventSelector> =
                    serde_json::from_value(basic.clone()).map_err(|e| {
                        AwsError::client("SerializationException", format!("EventSelectors: {e}"))
                    })?;
                cairn_select::validate_event_selectors(&basic)
                    .map_err(|e| invalid_selectors(e.to_string()))?;
                // Stored and echoed with CloudTrail's defaults filled in, as GetEventSelectors shows them.
                Selectors::Basic(basic.iter().map(EventSelector::normalized).collect())
            }
            (None, Some(advanced)) => {
                let advanced: Vec<AdvancedEventSelector> =
                    cairn_select::parse_advanced_event_selectors(advanced)
                        .map_err(|e| invalid_selectors(e.to_string()))?;
                cairn_select::validate_advanced_event_selectors(&advanced, SelectorTarget::Trail)
                    .map_err(|e| invalid_selectors(e.to_string()))?;
                Selectors::Advanced(advanced)
            }
        };
        let mut config = trail.config.clone();
        config.selectors = selectors_to_stored(&selectors);
        config.has_custom_event_selectors = true;
        self.configure(config.clone()).await?;
        let mut out = selectors_shape(&config);
        out.insert("TrailARN".into(), json!(config.arn));
        Ok(Value::Object(out))
    }

    fn get_event_selectors(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.load(&input.required_string("TrailName")?)?;
        let mut out = selectors_shape(&trail.config);
        out.insert("TrailARN".into(), json!(trail.config.arn));
        Ok(Value::Object(out))
    }

    fn get_insight_selectors(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let name = input.string("TrailName")?.ok_or_else(|| {
            AwsError::client(
                "InvalidParameterCombinationException",
                "You must specify TrailName or EventDataStore.",
            )
        })?;
        let trail = self.load(&name)?;
        match &trail.config.insight_selectors {
            Some(selectors) => {
                Ok(json!({"TrailARN": trail.config.arn, "InsightSelectors": selectors}))
            }
            None => Err(AwsError::client(
                "InsightNotEnabledException",
                format!(
                    "Trail {} does not have Insights enabled. Edit the trail settings to enable Insights, and then try the operation again.",
                    trail.config.name
                ),
            )),
        }
    }

    fn tagged_trail(&self, resource_id: &str) -> Result<TrailRecord, AwsError> {
        if !TrailArn::looks_like_arn(resource_id) {
            return Err(AwsError::client(
                "CloudTrailARNInvalidException",
                format!("{resource_id} is not a valid trail ARN."),
            ));
        }
        self.load(resource_id).map_err(|e| {
            if e.code == "TrailNotFoundException" {
                AwsError::client(
                    "ResourceNotFoundException",
                    format!("Resource {resource_id} not found."),
                )
            } else {
                e
            }
        })
    }

    fn add_tags(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.tagged_trail(&input.required_string("ResourceId")?)?;
        let new = parse_tags(input.value("TagsList"))?;
        let mut config = trail.config;
        for tag in new {
            match config.tags.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value,
                None => config.tags.push(tag),
            }
        }
        if config.tags.len() > 50 {
            return Err(AwsError::client(
                "TagsLimitExceededException",
                "The number of tags per trail has exceeded the permitted amount (50).",
            ));
        }
        self.state
            .meta
            .update_trail_config(&config)
            .map_err(AwsError::internal)?;
        Ok(json!({}))
    }

    fn remove_tags(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let input = Input(input);
        let trail = self.tagged_trail(&input.required_string("ResourceId")?)?;
        let remove = parse_tags(input.value("TagsList"))?;
        let mut config = trail.config;
        config
            .tags
            .retain(|t| !remove.iter().any(|r| r.key == t.key));
        self.state
            .meta
            .update_trail_config(&config)
            .map_err(AwsError::internal)?;
        Ok(json!({}))
    }

    fn list_tags(&self, input: Map<String, Value>) -> Result<Value, AwsError> {
        let ids: Vec<String> = match input.get("ResourceIdList") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| serialization("ResourceIdList", "a list of strings"))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(AwsError::client(
                    "InvalidParameterException",
                    "Missing required parameter ResourceIdList.",
                ));
            }
        };
        if ids.len() > 20 {
            return Err(AwsError::client(
                "InvalidParameterException",
                "ResourceIdList may hold at most 20 ARNs.",
            ));
        }
        let mut out = Vec::new();
        for id in ids {
            let trail = self.tagged_trail(&id)?;
            out.push(json!({"ResourceId": trail.config.arn, "TagsList": trail.config.tags}));
        }
        Ok(json!({"ResourceTagList": out}))
    }
}

fn selectors_shape(config: &TrailConfig) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Object(map) = &config.selectors {
        for (k, v) in map {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn invalid_selectors(message: String) -> AwsError {
    AwsError::client("InvalidEventSelectorsException", message)
}

fn parse_tags(value: Option<&Value>) -> Result<Vec<Tag>, AwsError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let tags: Vec<Tag> = serde_json::from_value(value.clone()).map_err(|e| {
        AwsError::client(
            "InvalidTagParameterException",
            format!("TagsList is not valid: {e}"),
        )
    })?;
    if tags.len() > 200 {
        return Err(AwsError::client(
            "TagsLimitExceededException",
            "A request may carry at most 200 tags.",
        ));
    }
    for tag in &tags {
        let key_len = tag.key.chars().count();
        if key_len == 0
            || key_len > 128
            || tag.value.as_ref().is_some_and(|v| v.chars().count() > 256)
            || tag.key.starts_with("aws:")
        {
            return Err(AwsError::client(
                "InvalidTagParameterException",
                format!("Tag key or value is not valid: {}", tag.key),
            ));
        }
    }
    Ok(tags)
}

/// Maps pipeline failures to AWS errors.
pub fn pipeline_error(e: cairn_pipeline::Error) -> AwsError {
    match e {
        cairn_pipeline::Error::Throttled { .. } => AwsError::throttling(e.to_string()),
        cairn_pipeline::Error::Conflict(message) => AwsError::client("ConflictException", message),
        cairn_pipeline::Error::Meta(cairn_meta::Error::AlreadyExists(arn)) => AwsError::client(
            "TrailAlreadyExistsException",
            format!("Trail {arn} already exists"),
        ),
        cairn_pipeline::Error::Meta(cairn_meta::Error::NotFound(arn)) => {
            AwsError::client("TrailNotFoundException", format!("Unknown trail: {arn}"))
        }
        other => AwsError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_bucket_names() {
        assert!(valid_bucket_name("my-bucket.logs"));
        assert!(!valid_bucket_name("My-Bucket"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("a..b"));
        assert!(!valid_bucket_name("192.168.1.1"));
        assert!(!valid_bucket_name("-abc"));
    }
}
