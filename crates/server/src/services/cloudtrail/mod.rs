//! The CloudTrail control plane: trails, their status, event and insight
//! selectors, tags, public keys. Typed requests in, typed results out; the
//! JSON 1.1 codec and the operation table sit above.
//!
//! Regions are AWS's: the request's region is its SigV4 scope's. A trail lives
//! in its home region (the region of its CreateTrail request, which its ARN
//! names); a multi-region trail also appears in every other region as a
//! *shadow trail*. Names resolve in the request's region; ARNs anywhere the
//! trail is visible. Changes are made in the home region only.
//!
//! Shapes and error codes follow botocore's `cloudtrail` model. botocore checks
//! only required members, types and minimums, so every maximum, pattern and
//! enum rule is enforced here, in CloudTrail's order: names, then parameter
//! combinations, then existence and quota, then the resources named.

use chrono::Utc;

use cairn_meta::{Tag, TrailConfig, TrailRecord};
use cairn_model::{AccountId, Region, TrailArn, TrailName};
use cairn_pipeline::envelope::TrailChange;
use cairn_select::selectors_to_stored;
use cairn_select::{AdvancedEventSelector, EventSelector, SelectorTarget, Selectors};

use super::blocking;
use crate::error::AwsError;
use crate::state::{AppState, RequestContext};

/// Trails one account may have in one region (CloudTrail's quota). A
/// multi-region trail counts in every region.
pub const MAX_TRAILS_PER_REGION: usize = 5;

mod insights;
mod lookup;
mod shapes;

pub use insights::validate_insight_selectors;
pub use lookup::lookup_events;
pub use shapes::*;

use insights::check_insights_have_events;

// ---------------------------------------------------------------------------
// Names, ARNs and regions

/// The ARN a trail name or ARN stands for in the request's region (used by
/// the operation table for the resources a request touches).
pub fn trail_arn_of(ctx: &RequestContext, name_or_arn: &str) -> String {
    if TrailArn::looks_like_arn(name_or_arn) {
        return name_or_arn.to_owned();
    }
    format!(
        "arn:aws:cloudtrail:{}:{}:trail/{name_or_arn}",
        ctx.region, ctx.account_id
    )
}

/// Who asks, in which region: the scope every rule works in.
struct Scope<'a> {
    state: &'a AppState,
    ctx: &'a RequestContext,
}

/// How a name (not an ARN) resolves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ByName {
    /// Only a trail whose home is the request's region.
    HomeOnly,
    /// Also a multi-region trail of that name from another region (its shadow).
    OrShadow,
}

fn required(value: Option<String>, member: &str) -> Result<String, AwsError> {
    value.ok_or_else(|| {
        AwsError::client(
            "InvalidParameterException",
            format!("Missing required parameter {member}."),
        )
    })
}

fn invalid_trail_name(e: cairn_model::Error) -> AwsError {
    AwsError::client("InvalidTrailNameException", e.to_string())
}

fn is_visible_in(config: &TrailConfig, region: &str) -> bool {
    config.home_region == region || config.is_multi_region_trail
}

impl Scope<'_> {
    fn account(&self) -> &str {
        &self.state.settings.account_id
    }

    fn region(&self) -> &str {
        &self.ctx.region
    }

    fn not_found(&self, arn: &str) -> AwsError {
        AwsError::client(
            "TrailNotFoundException",
            format!("Unknown trail: {arn} for the user: {}", self.account()),
        )
    }

    fn arn_in_region(&self, name: &TrailName) -> Result<String, AwsError> {
        let region = Region::new(self.region()).map_err(|_| {
            AwsError::client(
                "InvalidParameterException",
                format!("{} is not a valid region.", self.region()),
            )
        })?;
        let account = AccountId::new(self.account()).map_err(AwsError::internal)?;
        Ok(TrailArn::new(region, account, name.clone()).to_string())
    }

    async fn all_trails(&self) -> Result<Vec<TrailRecord>, AwsError> {
        let meta = self.state.meta.clone();
        blocking(move || Ok(meta.trails()?)).await
    }

    /// Finds the trail a name or ARN stands for, as seen from the request's region.
    async fn find(&self, name_or_arn: &str, by_name: ByName) -> Result<TrailRecord, AwsError> {
        let trails = self.all_trails().await?;
        if TrailArn::looks_like_arn(name_or_arn) {
            let arn = TrailArn::parse(name_or_arn).map_err(|_| {
                AwsError::client(
                    "CloudTrailARNInvalidException",
                    format!("Invalid trail ARN: {name_or_arn}"),
                )
            })?;
            let arn = arn.to_string();
            return trails
                .into_iter()
                .find(|t| t.config.arn == arn && is_visible_in(&t.config, self.region()))
                .ok_or_else(|| self.not_found(&arn));
        }
        let name = TrailName::new(name_or_arn).map_err(invalid_trail_name)?;
        let arn = self.arn_in_region(&name)?;
        let mut shadow = None;
        for t in trails {
            if t.config.arn == arn {
                return Ok(t);
            }
            if by_name == ByName::OrShadow
                && t.config.name == name.as_str()
                && t.config.is_multi_region_trail
            {
                shadow = Some(t);
            }
        }
        shadow.ok_or_else(|| self.not_found(&arn))
    }

    /// Finds a trail to change: only in its home region.
    async fn find_at_home(&self, name_or_arn: &str) -> Result<TrailRecord, AwsError> {
        let trail = self.find(name_or_arn, ByName::HomeOnly).await?;
        if trail.config.home_region != self.region() {
            return Err(AwsError::client(
                "InvalidHomeRegionException",
                format!(
                    "The trail {} can only be changed in its home region {}.",
                    trail.config.arn, trail.config.home_region
                ),
            ));
        }
        Ok(trail)
    }

    fn check_parameter_combination(&self, config: &TrailConfig) -> Result<(), AwsError> {
        if config.is_multi_region_trail && !config.include_global_service_events {
            return Err(AwsError::client(
                "InvalidParameterCombinationException",
                "Multi-Region trail must include global service events.",
            ));
        }
        Ok(())
    }

    fn check_organization(&self, settings: &TrailSettings) -> Result<(), AwsError> {
        if settings.is_organization_trail != Some(true) {
            return Ok(());
        }
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
        Ok(())
    }

    /// Applies the flags of a request (no lookups): what parameter combinations are judged on.
    fn apply_flags(config: &mut TrailConfig, settings: &TrailSettings) {
        if let Some(v) = settings.include_global_service_events {
            config.include_global_service_events = v;
        }
        if let Some(v) = settings.is_multi_region_trail {
            config.is_multi_region_trail = v;
        }
        if let Some(v) = settings.enable_log_file_validation {
            config.log_file_validation_enabled = v;
        }
        if let Some(v) = settings.is_organization_trail {
            config.is_organization_trail = v;
        }
    }

    /// Checks and applies the resources a request names: bucket, prefix, topic, log group, key.
    async fn apply_resources(
        &self,
        config: &mut TrailConfig,
        settings: &TrailSettings,
    ) -> Result<(), AwsError> {
        if let Some(bucket) = &settings.s3_bucket_name {
            if !valid_bucket_name(bucket) {
                return Err(AwsError::client(
                    "InvalidS3BucketNameException",
                    format!("Bucket name is not valid: {bucket}"),
                ));
            }
            let meta = self.state.meta.clone();
            let name = bucket.clone();
            if blocking(move || Ok(meta.bucket(&name)?)).await?.is_none() {
                return Err(AwsError::client(
                    "S3BucketDoesNotExistException",
                    format!("S3 bucket {bucket} does not exist!"),
                ));
            }
            config.s3_bucket_name = bucket.clone();
        }
        if let Some(prefix) = &settings.s3_key_prefix {
            if let Err(reason) = check_s3_key_prefix(prefix) {
                return Err(AwsError::client(
                    "InvalidS3PrefixException",
                    format!("The S3 prefix {prefix:?} is not valid: {reason}"),
                ));
            }
            config.s3_key_prefix = (!prefix.is_empty()).then(|| prefix.clone());
        }
        if let Some(topic) = &settings.sns_topic_name {
            if topic.is_empty() {
                config.sns_topic_name = None;
            } else {
                let arn = sns_topic_arn(config, topic);
                let monitor = self.state.monitor.clone();
                let lookup = arn.clone();
                let found = blocking(move || Ok(monitor.topic(&lookup)?)).await?;
                if found.is_none() {
                    return Err(AwsError::client(
                        "InsufficientSnsTopicPolicyException",
                        "SNS Topic does not exist or the topic policy is incorrect!",
                    ));
                }
                config.sns_topic_name = Some(topic.clone());
            }
        }
        if let Some(group) = &settings.cloud_watch_logs_log_group_arn {
            if group.is_empty() {
                config.cloud_watch_logs_log_group_arn = None;
                config.cloud_watch_logs_role_arn = None;
            } else {
                let Some(key) = cairn_monitor::GroupKey::from_arn(group) else {
                    return Err(AwsError::client(
                        "InvalidCloudWatchLogsLogGroupArnException",
                        format!("Log group ARN {group} is not valid."),
                    ));
                };
                let monitor = self.state.monitor.clone();
                if blocking(move || Ok(monitor.log_group(&key)?))
                    .await?
                    .is_none()
                {
                    return Err(AwsError::client(
                        "InvalidCloudWatchLogsLogGroupArnException",
                        format!("Log group {group} does not exist."),
                    ));
                }
                config.cloud_watch_logs_log_group_arn = Some(group.clone());
            }
        }
        if let Some(role) = &settings.cloud_watch_logs_role_arn {
            if role.is_empty() {
                config.cloud_watch_logs_role_arn = None;
            } else {
                // Shape only: IAM roles do not exist on this server yet.
                if !is_role_arn(role) {
                    return Err(AwsError::client(
                        "InvalidCloudWatchLogsRoleArnException",
                        format!("Role ARN {role} is not valid."),
                    ));
                }
                config.cloud_watch_logs_role_arn = Some(role.clone());
            }
        }
        match (
            &config.cloud_watch_logs_log_group_arn,
            &config.cloud_watch_logs_role_arn,
        ) {
            (Some(_), None) => {
                return Err(AwsError::client(
                    "InvalidCloudWatchLogsRoleArnException",
                    "A CloudWatch Logs log group ARN requires a CloudWatch Logs role ARN.",
                ));
            }
            (None, Some(_)) => {
                return Err(AwsError::client(
                    "InvalidCloudWatchLogsRoleArnException",
                    "A CloudWatch Logs role ARN requires a CloudWatch Logs log group ARN.",
                ));
            }
            _ => {}
        }
        if let Some(key) = &settings.kms_key_id {
            if !key.is_empty() {
                return Err(AwsError::client(
                    "KmsKeyNotFoundException",
                    format!("KMS key {key} does not exist."),
                ));
            }
            config.kms_key_id = None;
        }
        Ok(())
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
fn is_role_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:") else {
        return false;
    };
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    !partition.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource
            .strip_prefix("role/")
            .is_some_and(|name| !name.is_empty() && !name.ends_with('/'))
}

// ---------------------------------------------------------------------------
// Writes: the pipeline first, then the metastore, in one place

/// A trail write: what the pipeline is told and what the metastore records.
enum TrailWrite {
    /// CreateTrail.
    Create(TrailConfig),
    /// UpdateTrail, PutEventSelectors, PutInsightSelectors, tags.
    Configure(TrailConfig),
    /// StartLogging / StopLogging.
    Logging { arn: String, logging: bool },
    /// DeleteTrail.
    Delete { arn: String },
}

/// Applies a trail write through the pipeline's one entry point for trail
/// changes. Every write of trails goes through here.
async fn write_trail(state: &AppState, write: TrailWrite) -> Result<(), AwsError> {
    // One pipeline call writes the WAL's trail change, then the metastore row
    // derived from it (replayed at start-up if a crash came in between).
    let (arn, change) = match write {
        TrailWrite::Create(config) => (config.arn.clone(), TrailChange::Create(Box::new(config))),
        TrailWrite::Configure(config) => {
            (config.arn.clone(), TrailChange::Configure(Box::new(config)))
        }
        TrailWrite::Logging { arn, logging: true } => (arn, TrailChange::StartLogging),
        TrailWrite::Logging {
            arn,
            logging: false,
        } => (arn, TrailChange::StopLogging),
        TrailWrite::Delete { arn } => (arn, TrailChange::Delete),
    };
    state.pipeline.change_trail(&arn, change).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Operations

/// CreateTrail: a new trail in the request's region (its home region).
pub async fn create_trail(
    state: &AppState,
    ctx: &RequestContext,
    input: CreateTrailRequest,
) -> Result<TrailSettingsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let raw_name = required(input.name, "Name")?;
    let name = TrailName::new(&raw_name).map_err(invalid_trail_name)?;
    let bucket = required(input.settings.s3_bucket_name.clone(), "S3BucketName")?;
    let tags = check_tags(input.tags_list.unwrap_or_default())?;
    let arn = scope.arn_in_region(&name)?;
    let mut config = TrailConfig {
        tags,
        ..TrailConfig::new(
            name.to_string(),
            arn.clone(),
            scope.account(),
            scope.region(),
            bucket,
            selectors_to_stored(&Selectors::default_for_new_trail()),
            Utc::now(),
        )
    };
    Scope::apply_flags(&mut config, &input.settings);
    scope.check_parameter_combination(&config)?;
    scope.check_organization(&input.settings)?;
    let trails = scope.all_trails().await?;
    // A name is taken in a region by a trail there or by a multi-region trail's
    // shadow; a new multi-region trail takes it in every region.
    let taken = trails.iter().any(|t| {
        t.config.name == config.name
            && (t.config.arn == arn
                || t.config.is_multi_region_trail
                || config.is_multi_region_trail)
    });
    if taken {
        return Err(AwsError::client(
            "TrailAlreadyExistsException",
            format!(
                "Trail {name} already exists for customer: {}",
                scope.account()
            ),
        ));
    }
    let in_region = trails
        .iter()
        .filter(|t| is_visible_in(&t.config, scope.region()))
        .count();
    if in_region >= MAX_TRAILS_PER_REGION {
        return Err(AwsError::client(
            "MaximumNumberOfTrailsExceededException",
            format!(
                "User: {} already has {MAX_TRAILS_PER_REGION} trails in {}.",
                scope.account(),
                scope.region()
            ),
        ));
    }
    scope.apply_resources(&mut config, &input.settings).await?;
    write_trail(state, TrailWrite::Create(config.clone())).await?;
    Ok(TrailSettingsResponse::of(&config))
}

/// GetTrail: by name (the region's trail or a shadow) or ARN.
pub async fn get_trail(
    state: &AppState,
    ctx: &RequestContext,
    input: NameRequest,
) -> Result<GetTrailResponse, AwsError> {
    let scope = Scope { state, ctx };
    let trail = scope
        .find(&required(input.name, "Name")?, ByName::OrShadow)
        .await?;
    Ok(GetTrailResponse {
        trail: Trail::of(&trail.config),
    })
}

/// DescribeTrails: the region's trails and (by default) the shadows of
/// multi-region trails from other regions; names match the region's own
/// trails only, ARNs any visible trail; unknown ones are left out.
pub async fn describe_trails(
    state: &AppState,
    ctx: &RequestContext,
    input: DescribeTrailsRequest,
) -> Result<DescribeTrailsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let include_shadows = input.include_shadow_trails.unwrap_or(true);
    let region = scope.region().to_owned();
    let trails = scope.all_trails().await?;
    let is_shadow = |c: &TrailConfig| c.home_region != region;
    let names = input.trail_name_list.unwrap_or_default();
    let mut list: Vec<Trail> = Vec::new();
    if names.is_empty() {
        let (home, shadows): (Vec<_>, Vec<_>) = trails
            .iter()
            .filter(|t| is_visible_in(&t.config, &region))
            .partition(|t| !is_shadow(&t.config));
        list.extend(home.iter().map(|t| Trail::of(&t.config)));
        if include_shadows {
            list.extend(shadows.iter().map(|t| Trail::of(&t.config)));
        }
    } else {
        for name in &names {
            let found = if TrailArn::looks_like_arn(name) {
                let arn = TrailArn::parse(name).map_err(|_| {
                    AwsError::client(
                        "CloudTrailARNInvalidException",
                        format!("Invalid trail ARN: {name}"),
                    )
                })?;
                let arn = arn.to_string();
                trails.iter().find(|t| {
                    t.config.arn == arn
                        && is_visible_in(&t.config, &region)
                        && (include_shadows || !is_shadow(&t.config))
                })
            } else {
                let name = TrailName::new(name).map_err(invalid_trail_name)?;
                let arn = scope.arn_in_region(&name)?;
                trails.iter().find(|t| t.config.arn == arn)
            };
            if let Some(t) = found {
                list.push(Trail::of(&t.config));
            }
        }
    }
    Ok(DescribeTrailsResponse { trail_list: list })
}

/// ListTrails: the trails visible in the request's region (its own and the
/// multi-region trails of other regions), each with its home region. Trails
/// are "viewable only in the Regions where they log events" (CloudTrail,
/// since April 2019).
pub async fn list_trails(
    state: &AppState,
    ctx: &RequestContext,
    _input: ListTrailsRequest,
) -> Result<ListTrailsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let trails = scope.all_trails().await?;
    Ok(ListTrailsResponse {
        trails: trails
            .into_iter()
            .filter(|t| is_visible_in(&t.config, scope.region()))
            .map(|t| TrailInfo {
                trail_arn: t.config.arn,
                name: t.config.name,
                home_region: t.config.home_region,
            })
            .collect(),
    })
}

/// UpdateTrail: in the trail's home region.
pub async fn update_trail(
    state: &AppState,
    ctx: &RequestContext,
    input: UpdateTrailRequest,
) -> Result<TrailSettingsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let name = required(input.name, "Name")?;
    if !TrailArn::looks_like_arn(&name) {
        TrailName::new(&name).map_err(invalid_trail_name)?;
    }
    let trail = scope.find_at_home(&name).await?;
    let mut config = trail.config;
    Scope::apply_flags(&mut config, &input.settings);
    scope.check_parameter_combination(&config)?;
    scope.check_organization(&input.settings)?;
    if input.settings.is_multi_region_trail == Some(true) {
        // Becoming multi-region puts the trail in every region: its name must be free there.
        let trails = scope.all_trails().await?;
        if trails
            .iter()
            .any(|t| t.config.name == config.name && t.config.arn != config.arn)
        {
            return Err(AwsError::client(
                "TrailAlreadyExistsException",
                format!(
                    "Trail {} already exists for customer: {}",
                    config.name,
                    scope.account()
                ),
            ));
        }
    }
    scope.apply_resources(&mut config, &input.settings).await?;
    write_trail(state, TrailWrite::Configure(config.clone())).await?;
    Ok(TrailSettingsResponse::of(&config))
}

/// DeleteTrail: in the trail's home region.
pub async fn delete_trail(
    state: &AppState,
    ctx: &RequestContext,
    input: NameRequest,
) -> Result<Empty, AwsError> {
    let scope = Scope { state, ctx };
    let trail = scope.find_at_home(&required(input.name, "Name")?).await?;
    write_trail(
        state,
        TrailWrite::Delete {
            arn: trail.config.arn,
        },
    )
    .await?;
    Ok(Empty {})
}

/// StartLogging: in the trail's home region.
pub async fn start_logging(
    state: &AppState,
    ctx: &RequestContext,
    input: NameRequest,
) -> Result<Empty, AwsError> {
    set_logging(state, ctx, input, true).await
}

/// StopLogging: in the trail's home region.
pub async fn stop_logging(
    state: &AppState,
    ctx: &RequestContext,
    input: NameRequest,
) -> Result<Empty, AwsError> {
    set_logging(state, ctx, input, false).await
}

async fn set_logging(
    state: &AppState,
    ctx: &RequestContext,
    input: NameRequest,
    logging: bool,
) -> Result<Empty, AwsError> {
    let scope = Scope { state, ctx };
    let trail = scope.find_at_home(&required(input.name, "Name")?).await?;
    write_trail(
        state,
        TrailWrite::Logging {
            arn: trail.config.arn,
            logging,
        },
    )
    .await?;
    Ok(Empty {})
}

/// GetTrailStatus: a shadow trail only by its ARN.
pub async fn get_trail_status(
    state: &AppState,
    ctx: &RequestContext,
    input: NameRequest,
) -> Result<GetTrailStatusResponse, AwsError> {
    let scope = Scope { state, ctx };
    let trail = scope
        .find(&required(input.name, "Name")?, ByName::HomeOnly)
        .await?;
    Ok(GetTrailStatusResponse::of(&trail.status))
}

/// PutEventSelectors: in the trail's home region.
pub async fn put_event_selectors(
    state: &AppState,
    ctx: &RequestContext,
    input: PutEventSelectorsRequest,
) -> Result<EventSelectorsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let trail = scope
        .find_at_home(&required(input.trail_name, "TrailName")?)
        .await?;
    let selectors = match (input.event_selectors, input.advanced_event_selectors) {
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
            let basic: Vec<EventSelector> = serde_json::from_value(basic).map_err(|e| {
                AwsError::client("SerializationException", format!("EventSelectors: {e}"))
            })?;
            cairn_select::validate_event_selectors(&basic)
                .map_err(|e| invalid_selectors(e.to_string()))?;
            // Stored and echoed with CloudTrail's defaults filled in, as GetEventSelectors shows them.
            Selectors::Basic(basic.iter().map(EventSelector::normalized).collect())
        }
        (None, Some(advanced)) => {
            let advanced: Vec<AdvancedEventSelector> =
                cairn_select::parse_advanced_event_selectors(&advanced)
                    .map_err(|e| invalid_selectors(e.to_string()))?;
            cairn_select::validate_advanced_event_selectors(&advanced, SelectorTarget::Trail)
                .map_err(|e| invalid_selectors(e.to_string()))?;
            Selectors::Advanced(advanced)
        }
    };
    let mut config = trail.config;
    config.selectors = selectors_to_stored(&selectors);
    config.has_custom_event_selectors = true;
    write_trail(state, TrailWrite::Configure(config.clone())).await?;
    Ok(selectors_response(&config))
}

/// GetEventSelectors: by name or ARN, shadows included.
pub async fn get_event_selectors(
    state: &AppState,
    ctx: &RequestContext,
    input: TrailNameRequest,
) -> Result<EventSelectorsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let trail = scope
        .find(&required(input.trail_name, "TrailName")?, ByName::OrShadow)
        .await?;
    Ok(selectors_response(&trail.config))
}

fn selectors_response(config: &TrailConfig) -> EventSelectorsResponse {
    EventSelectorsResponse {
        trail_arn: config.arn.clone(),
        selectors: config.selectors.as_object().cloned().unwrap_or_default(),
    }
}

fn invalid_selectors(message: String) -> AwsError {
    AwsError::client("InvalidEventSelectorsException", message)
}

/// PutInsightSelectors: stores a trail's insight selectors (an empty list
/// turns Insights off). Insights are evaluated by a later sink.
pub async fn put_insight_selectors(
    state: &AppState,
    ctx: &RequestContext,
    input: PutInsightSelectorsRequest,
) -> Result<InsightSelectorsResponse, AwsError> {
    let scope = Scope { state, ctx };
    if input.event_data_store.is_some() || input.insights_destination.is_some() {
        return Err(AwsError::client(
            "UnsupportedOperationException",
            "Insights on event data stores are not supported by this server.",
        ));
    }
    let name = input.trail_name.ok_or_else(|| {
        AwsError::client(
            "InvalidParameterCombinationException",
            "You must specify TrailName or EventDataStore.",
        )
    })?;
    let selectors = input.insight_selectors.ok_or_else(|| {
        AwsError::client(
            "InvalidParameterException",
            "Missing required parameter InsightSelectors.",
        )
    })?;
    validate_insight_selectors(&selectors)?;
    let trail = scope.find_at_home(&name).await?;
    check_insights_have_events(&trail.config, &selectors)?;
    let mut config = trail.config;
    config.insight_selectors = Some(serde_json::to_value(&selectors).map_err(AwsError::internal)?);
    write_trail(state, TrailWrite::Configure(config.clone())).await?;
    Ok(InsightSelectorsResponse {
        trail_arn: config.arn,
        insight_selectors: selectors,
    })
}

/// GetInsightSelectors: a trail's insight selectors, or InsightNotEnabledException.
pub async fn get_insight_selectors(
    state: &AppState,
    ctx: &RequestContext,
    input: TrailNameRequest,
) -> Result<InsightSelectorsResponse, AwsError> {
    let scope = Scope { state, ctx };
    if input.event_data_store.is_some() {
        return Err(AwsError::client(
            "UnsupportedOperationException",
            "Insights on event data stores are not supported by this server.",
        ));
    }
    let name = input.trail_name.ok_or_else(|| {
        AwsError::client(
            "InvalidParameterCombinationException",
            "You must specify TrailName or EventDataStore.",
        )
    })?;
    let trail = scope.find(&name, ByName::OrShadow).await?;
    let selectors: Vec<InsightSelector> = trail
        .config
        .insight_selectors
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(AwsError::internal)?
        .unwrap_or_default();
    if selectors.is_empty() {
        return Err(AwsError::client(
            "InsightNotEnabledException",
            format!(
                "Trail {} does not have Insights enabled. Edit the trail settings to enable Insights, and then try the operation again.",
                trail.config.name
            ),
        ));
    }
    Ok(InsightSelectorsResponse {
        trail_arn: trail.config.arn,
        insight_selectors: selectors,
    })
}

async fn tagged_trail(scope: &Scope<'_>, resource_id: &str) -> Result<TrailRecord, AwsError> {
    if !TrailArn::looks_like_arn(resource_id) {
        return Err(AwsError::client(
            "CloudTrailARNInvalidException",
            format!("{resource_id} is not a valid trail ARN."),
        ));
    }
    scope
        .find(resource_id, ByName::HomeOnly)
        .await
        .map_err(|e| {
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

/// AddTags: adds or replaces tags of a trail.
pub async fn add_tags(
    state: &AppState,
    ctx: &RequestContext,
    input: TagsRequest,
) -> Result<Empty, AwsError> {
    let scope = Scope { state, ctx };
    let trail = tagged_trail(&scope, &required(input.resource_id, "ResourceId")?).await?;
    let new = check_tags(input.tags_list.unwrap_or_default())?;
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
    // Tags change nothing a sink does: the metastore alone records them.
    let meta = state.meta.clone();
    blocking(move || Ok(meta.update_trail_config(&config)?)).await?;
    Ok(Empty {})
}

/// RemoveTags: removes tags of a trail by key.
pub async fn remove_tags(
    state: &AppState,
    ctx: &RequestContext,
    input: TagsRequest,
) -> Result<Empty, AwsError> {
    let scope = Scope { state, ctx };
    let trail = tagged_trail(&scope, &required(input.resource_id, "ResourceId")?).await?;
    let remove = check_tags(input.tags_list.unwrap_or_default())?;
    let mut config = trail.config;
    config
        .tags
        .retain(|t| !remove.iter().any(|r| r.key == t.key));
    let meta = state.meta.clone();
    blocking(move || Ok(meta.update_trail_config(&config)?)).await?;
    Ok(Empty {})
}

/// ListTags: the tags of up to 20 trails.
pub async fn list_tags(
    state: &AppState,
    ctx: &RequestContext,
    input: ListTagsRequest,
) -> Result<ListTagsResponse, AwsError> {
    let scope = Scope { state, ctx };
    let ids = input.resource_id_list.ok_or_else(|| {
        AwsError::client(
            "InvalidParameterException",
            "Missing required parameter ResourceIdList.",
        )
    })?;
    if ids.len() > 20 {
        return Err(AwsError::client(
            "InvalidParameterException",
            "ResourceIdList may hold at most 20 ARNs.",
        ));
    }
    let mut out = Vec::new();
    for id in ids {
        let trail = tagged_trail(&scope, &id).await?;
        out.push(ResourceTag {
            resource_id: trail.config.arn,
            tags_list: trail.config.tags,
        });
    }
    Ok(ListTagsResponse {
        resource_tag_list: out,
    })
}

/// ListPublicKeys: the digest signing keys of the request's region that sign
/// at some instant of `[StartTime, EndTime]` (both default to now).
pub async fn list_public_keys(
    state: &AppState,
    ctx: &RequestContext,
    input: ListPublicKeysRequest,
) -> Result<ListPublicKeysResponse, AwsError> {
    let now = Utc::now();
    let start = input.start_time.unwrap_or(now);
    let end = input.end_time.unwrap_or(now);
    if start > end {
        return Err(AwsError::client(
            "InvalidTimeRangeException",
            "Occurs if the timestamp values are not valid. Either the start time occurs after the end time, or the time range is outside the range of possible values.",
        ));
    }
    let keyring = state.pipeline.keyring().clone();
    let region = ctx.region.clone();
    let keys = blocking(move || {
        keyring
            .public_keys(&region, start, end)
            .map_err(|e| AwsError::internal(format!("reading the digest keyring: {e}")))
    })
    .await?;
    Ok(ListPublicKeysResponse {
        public_key_list: keys
            .into_iter()
            .map(|k| PublicKey {
                value: k.value,
                validity_start_time: Epoch(k.valid_from),
                validity_end_time: Epoch(k.valid_until),
                fingerprint: k.fingerprint,
            })
            .collect(),
    })
}

/// Checks tags against CloudTrail's limits.
fn check_tags(tags: Vec<Tag>) -> Result<Vec<Tag>, AwsError> {
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

/// S3's bucket naming rules for general purpose buckets: 3 to 63 characters
/// of lowercase letters, digits, `.` and `-`; labels (between dots) start and
/// end with a letter or digit (so no `..`, `.-` or `-.`); not an IPv4
/// address; none of the prefixes and suffixes S3 reserves.
pub fn valid_bucket_name(name: &str) -> bool {
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && name.split('.').all(|label| {
            let label = label.as_bytes();
            label.first().is_some_and(u8::is_ascii_alphanumeric)
                && label.last().is_some_and(u8::is_ascii_alphanumeric)
        })
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// S3's limit on a key's length, in UTF-8 bytes.
const MAX_S3_KEY_BYTES: usize = 1024;

/// CloudTrail's limit on `S3KeyPrefix`, in characters.
const MAX_S3_KEY_PREFIX_CHARS: usize = 200;

/// The longest a key CloudTrail writes under a prefix can be after it: a
/// digest key (longer than a log file's) with an organization ID, a region
/// name and a home region of the longest accepted length (64) and a trail
/// name of 128 characters:
/// `/AWSLogs/<o-id 34>/<account 12>/CloudTrail-Digest/<region>/YYYY/MM/DD/<account>_CloudTrail-Digest_<region>_<trail>_<home>_YYYYMMDDTHHMMSSZ.json.gz`.
fn longest_key_after_prefix() -> usize {
    let (org, account, region, trail) = (
        "o".repeat(34),
        "1".repeat(12),
        "r".repeat(64),
        "t".repeat(128),
    );
    format!(
        "/AWSLogs/{org}/{account}/CloudTrail-Digest/{region}/2026/01/01/{account}_CloudTrail-Digest_{region}_{trail}_{region}_20260101T000000Z.json.gz"
    )
    .len()
}

/// `S3KeyPrefix` by AWS's and S3's rules, and so that every key Cairn builds
/// under it is one the store can hold: at most 200 characters; no leading
/// `/`; no empty segment (`a//b`, a trailing `/`), no `.` or `..` segment;
/// no control characters; no segment longer than 255 bytes (a file name on
/// the local backend); and the longest key under it within S3's 1024 bytes.
/// An empty prefix is no prefix.
pub fn check_s3_key_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.chars().count() > MAX_S3_KEY_PREFIX_CHARS {
        return Err(format!(
            "it must be at most {MAX_S3_KEY_PREFIX_CHARS} characters."
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err("it must not contain control characters.".into());
    }
    if prefix.starts_with('/') {
        return Err("it must not start with '/'.".into());
    }
    for segment in prefix.split('/') {
        match segment {
            "" => {
                return Err(
                    "it must not contain an empty path segment ('//' or a trailing '/').".into(),
                );
            }
            "." | ".." => return Err(format!("it must not contain a '{segment}' path segment.")),
            s if s.len() > 255 => {
                return Err("a path segment must be at most 255 bytes.".into());
            }
            _ => {}
        }
    }
    let longest = prefix.len() + longest_key_after_prefix();
    if longest > MAX_S3_KEY_BYTES {
        return Err(format!(
            "keys under it would be up to {longest} bytes, over the {MAX_S3_KEY_BYTES}-byte limit of an S3 key."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_meta::TrailStatus;
    use chrono::DateTime;

    #[test]
    fn test_bucket_names() {
        assert!(valid_bucket_name("my-bucket.logs"));
        assert!(!valid_bucket_name("My-Bucket"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("a..b"));
        assert!(!valid_bucket_name("192.168.1.1"));
        assert!(!valid_bucket_name("-abc"));
        assert!(!valid_bucket_name("abc-"));
        assert!(!valid_bucket_name("a-.bc"));
        assert!(!valid_bucket_name("ab.-c"));
        assert!(!valid_bucket_name("ab_c"));
        assert!(!valid_bucket_name("xn--abc"));
        assert!(!valid_bucket_name("sthree-abc"));
        assert!(!valid_bucket_name("abc-s3alias"));
        assert!(!valid_bucket_name("abc--ol-s3"));
        assert!(valid_bucket_name("a-b.c-d"));
        assert!(valid_bucket_name("123"));
    }

    #[test]
    fn test_s3_key_prefixes() {
        for ok in [
            "",
            "logs",
            "a/b/c",
            "cairn-logs_2024",
            "a.b/..c/c..",
            "日本",
        ] {
            assert!(check_s3_key_prefix(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "../x",
            "x/..",
            "a/../b",
            ".",
            "a/./b",
            "a//b",
            "a/",
            "/a",
            "a\nb",
            "a\u{7f}b",
            &"a".repeat(201),
            &"b".repeat(256),
        ] {
            assert!(check_s3_key_prefix(bad).is_err(), "{bad:?}");
        }
        // 200 characters of four bytes each: every segment short, the keys too long.
        let wide: String = (0..39)
            .map(|_| "\u{1F600}\u{1F600}\u{1F600}\u{1F600}/")
            .collect::<String>()
            + "z";
        assert!(wide.chars().count() <= 200);
        let err = check_s3_key_prefix(&wide).unwrap_err();
        assert!(err.contains("1024"), "{err}");
        // An ASCII prefix of 200 characters always fits.
        assert!(200 + longest_key_after_prefix() <= MAX_S3_KEY_BYTES);
    }

    #[test]
    fn test_status_of_a_new_trail_has_the_six_strings_empty() {
        let value = serde_json::to_value(GetTrailStatusResponse::of(&TrailStatus::default()))
            .expect("serialises");
        let expected = serde_json::json!({
            "IsLogging": false,
            "LatestDeliveryAttemptTime": "",
            "LatestNotificationAttemptTime": "",
            "LatestNotificationAttemptSucceeded": "",
            "LatestDeliveryAttemptSucceeded": "",
            "TimeLoggingStarted": "",
            "TimeLoggingStopped": "",
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn test_status_of_a_started_trail() {
        let started = DateTime::parse_from_rfc3339("2026-01-28T23:02:24.5Z")
            .expect("time")
            .with_timezone(&Utc);
        let status = TrailStatus {
            is_logging: true,
            start_logging_time: Some(started),
            ..TrailStatus::default()
        };
        let value = serde_json::to_value(GetTrailStatusResponse::of(&status)).expect("serialises");
        assert_eq!(value["StartLoggingTime"], serde_json::json!(1769641344.5));
        assert_eq!(value["TimeLoggingStarted"], "2026-01-28T23:02:24Z");
        assert_eq!(value["TimeLoggingStopped"], "");
        assert!(value.get("StopLoggingTime").is_none());
    }

    #[test]
    fn test_insight_selector_validation() {
        let sel = |t: &str| InsightSelector {
            insight_type: Some(t.to_owned()),
            event_categories: None,
        };
        assert!(validate_insight_selectors(&[]).is_ok());
        assert!(
            validate_insight_selectors(&[sel("ApiCallRateInsight"), sel("ApiErrorRateInsight")])
                .is_ok()
        );
        let e = validate_insight_selectors(&[sel("Nope")]).expect_err("unknown type");
        assert_eq!(e.code, "InvalidInsightSelectorsException");
        let e = validate_insight_selectors(&[sel("ApiCallRateInsight"), sel("ApiCallRateInsight")])
            .expect_err("twice");
        assert_eq!(e.code, "InvalidInsightSelectorsException");
        let bad_category = InsightSelector {
            insight_type: Some("ApiCallRateInsight".to_owned()),
            event_categories: Some(vec!["Insight".to_owned()]),
        };
        assert!(validate_insight_selectors(&[bad_category]).is_err());
    }

    fn config_with(selectors: Selectors) -> TrailConfig {
        TrailConfig {
            name: "t".to_owned(),
            arn: "arn:aws:cloudtrail:us-east-1:123456789012:trail/t".to_owned(),
            account_id: "123456789012".to_owned(),
            home_region: "us-east-1".to_owned(),
            s3_bucket_name: "b".to_owned(),
            s3_key_prefix: None,
            sns_topic_name: None,
            include_global_service_events: true,
            is_multi_region_trail: false,
            log_file_validation_enabled: false,
            cloud_watch_logs_log_group_arn: None,
            cloud_watch_logs_role_arn: None,
            kms_key_id: None,
            is_organization_trail: false,
            selectors: selectors_to_stored(&selectors),
            has_custom_event_selectors: true,
            insight_selectors: None,
            tags: Vec::new(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn test_insights_need_the_management_events_they_analyse() {
        let reads_only: Vec<EventSelector> = serde_json::from_value(serde_json::json!([
            {"ReadWriteType": "ReadOnly", "IncludeManagementEvents": true}
        ]))
        .expect("selectors");
        let config = config_with(Selectors::Basic(reads_only));
        let call_rate = InsightSelector {
            insight_type: Some("ApiCallRateInsight".to_owned()),
            event_categories: None,
        };
        let error_rate = InsightSelector {
            insight_type: Some("ApiErrorRateInsight".to_owned()),
            event_categories: None,
        };
        assert!(check_insights_have_events(&config, std::slice::from_ref(&call_rate)).is_err());
        assert!(check_insights_have_events(&config, std::slice::from_ref(&error_rate)).is_ok());
        let config = config_with(Selectors::default_for_new_trail());
        assert!(check_insights_have_events(&config, &[call_rate, error_rate]).is_ok());
    }

    #[test]
    fn test_create_request_decodes_the_wire_names() {
        let input: CreateTrailRequest = serde_json::from_value(serde_json::json!({
            "Name": "t1", "S3BucketName": "b", "IsMultiRegionTrail": true,
            "EnableLogFileValidation": true, "TagsList": [{"Key": "k", "Value": "v"}]
        }))
        .expect("decodes");
        assert_eq!(input.settings.s3_bucket_name.as_deref(), Some("b"));
        assert_eq!(input.settings.is_multi_region_trail, Some(true));
        assert_eq!(input.settings.enable_log_file_validation, Some(true));
        assert_eq!(input.tags_list.map(|t| t.len()), Some(1));
    }
}
