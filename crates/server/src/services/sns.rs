//! Amazon SNS (query protocol): topics, subscriptions (`http`, `https` and
//! Cairn's `file`), confirmation, Publish, attributes and tags.
//!
//! Results are built as JSON in SNS's result shapes and rendered as the
//! query protocol's XML by the codec (maps marked with
//! [`crate::protocol::query::XML_MAP`]). Notifications are put in the
//! monitoring store's outbox before Publish answers, and delivered by
//! [`crate::monitoring`]. `http`/`https` subscriptions wait for
//! confirmation (the endpoint receives a signed SubscriptionConfirmation
//! whose SubscribeURL, fetched without credentials, confirms it by its
//! token, as on AWS); `file` subscriptions are confirmed at once.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use cairn_monitor::{Subscription, Topic};
use cairn_notify::{MessageAttribute, Protocol, SignatureVersion, TopicArn};

use super::blocking;
use crate::error::{AwsError, sns_error};
use crate::protocol::query::XML_MAP;
use crate::state::{AppState, RequestContext};

/// ListTopics and ListSubscriptions page size (SNS's).
const PAGE: usize = 100;

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameter", message)
}

fn not_found(message: &str) -> AwsError {
    sns_error(cairn_monitor::Error::NotFound(message.to_owned()))
}

fn xml_map(map: BTreeMap<String, String>) -> Value {
    json!({ XML_MAP: map })
}

/// A tag in SNS's shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsTag {
    /// `Key`.
    pub key: String,
    /// `Value`.
    #[serde(default)]
    pub value: String,
}

fn tags_of(tags: Vec<SnsTag>) -> Result<BTreeMap<String, String>, AwsError> {
    let mut out = BTreeMap::new();
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 {
            return Err(invalid("Invalid parameter: Tags"));
        }
        out.insert(t.key, t.value);
    }
    if out.len() > 50 {
        return Err(AwsError::client(
            "TagLimitExceeded",
            "Could not complete request: tag quota of per resource exceeded",
        ));
    }
    Ok(out)
}

/// The topic an ARN names, in the caller's account and region.
fn topic_arn(ctx: &RequestContext, arn: &str) -> Result<String, AwsError> {
    let parsed = TopicArn::parse(arn).map_err(|_| invalid("Invalid parameter: TopicArn"))?;
    if parsed.account != ctx.account_id || parsed.region != ctx.region {
        return Err(not_found("Topic does not exist"));
    }
    Ok(arn.to_owned())
}

async fn store<T, F>(state: &AppState, work: F) -> Result<T, AwsError>
where
    F: FnOnce(&cairn_monitor::Monitor) -> Result<T, cairn_monitor::Error> + Send + 'static,
    T: Send + 'static,
{
    let monitor = state.monitor.clone();
    blocking(move || work(&monitor).map_err(sns_error)).await
}

async fn existing_topic(state: &AppState, arn: &str) -> Result<Topic, AwsError> {
    let arn = arn.to_owned();
    store(state, move |m| m.topic(&arn))
        .await?
        .ok_or_else(|| not_found("Topic does not exist"))
}

// ---------------------------------------------------------------------------
// Topics

/// CreateTopic's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTopicRequest {
    /// `Name`.
    pub name: String,
    /// `Attributes`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// `Tags`.
    #[serde(default)]
    pub tags: Vec<SnsTag>,
}

/// CreateTopic: idempotent by name (the same ARN again when the attributes
/// and tags match).
pub async fn create_topic(
    state: &AppState,
    ctx: &RequestContext,
    input: CreateTopicRequest,
) -> Result<Value, AwsError> {
    let fifo = input
        .attributes
        .get("FifoTopic")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    cairn_notify::validate_topic_name(&input.name, fifo)?;
    for (name, value) in &input.attributes {
        cairn_notify::validate_topic_attribute(name, value)?;
    }
    let topic = Topic {
        arn: cairn_notify::topic_arn(&ctx.region, &ctx.account_id, &input.name),
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        name: input.name,
        attributes: input.attributes,
        tags: tags_of(input.tags)?,
    };
    let created = store(state, move |m| m.create_topic(&topic)).await?;
    Ok(json!({ "TopicArn": created.arn }))
}

/// An input without members but paging.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PageRequest {
    /// `NextToken`.
    pub next_token: Option<String>,
}

/// ListTopics.
pub async fn list_topics(
    state: &AppState,
    ctx: &RequestContext,
    input: PageRequest,
) -> Result<Value, AwsError> {
    let (account, region) = (ctx.account_id.clone(), ctx.region.clone());
    let (topics, next) = store(state, move |m| {
        m.topics(&account, &region, input.next_token.as_deref(), PAGE)
    })
    .await?;
    let topics: Vec<Value> = topics
        .into_iter()
        .map(|t| json!({ "TopicArn": t.arn }))
        .collect();
    Ok(json!({ "Topics": topics, "NextToken": next }))
}

/// An input naming a topic.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopicRequest {
    /// `TopicArn`.
    pub topic_arn: String,
}

/// GetTopicAttributes.
pub async fn get_topic_attributes(
    state: &AppState,
    ctx: &RequestContext,
    input: TopicRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.topic_arn)?;
    let topic = existing_topic(state, &arn).await?;
    let lookup = arn.clone();
    let (confirmed, pending) = store(state, move |m| m.subscription_counts(&lookup)).await?;
    let counts = cairn_notify::TopicCounts {
        confirmed,
        pending,
        deleted: 0,
    };
    let attributes =
        cairn_notify::topic_attributes(&ctx.account_id, &arn, &topic.attributes, counts);
    Ok(json!({ "Attributes": xml_map(attributes) }))
}

/// SetTopicAttributes' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetAttributeRequest {
    /// `TopicArn` (SetTopicAttributes).
    pub topic_arn: Option<String>,
    /// `SubscriptionArn` (SetSubscriptionAttributes).
    pub subscription_arn: Option<String>,
    /// `AttributeName`.
    pub attribute_name: String,
    /// `AttributeValue`.
    #[serde(default)]
    pub attribute_value: String,
}

/// SetTopicAttributes.
pub async fn set_topic_attributes(
    state: &AppState,
    ctx: &RequestContext,
    input: SetAttributeRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, input.topic_arn.as_deref().unwrap_or_default())?;
    cairn_notify::validate_topic_attribute(&input.attribute_name, &input.attribute_value)?;
    store(state, move |m| {
        m.set_topic_attribute(&arn, &input.attribute_name, &input.attribute_value)
    })
    .await?;
    Ok(json!({}))
}

/// DeleteTopic (a topic that does not exist is not an error, as on SNS).
pub async fn delete_topic(
    state: &AppState,
    ctx: &RequestContext,
    input: TopicRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.topic_arn)?;
    store(state, move |m| m.delete_topic(&arn)).await?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------
// Subscriptions

/// Subscribe's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeRequest {
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Protocol`.
    pub protocol: String,
    /// `Endpoint`.
    pub endpoint: Option<String>,
    /// `Attributes`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// `ReturnSubscriptionArn`.
    pub return_subscription_arn: Option<String>,
}

/// Subscribe: `http`/`https` endpoints get a SubscriptionConfirmation and
/// the answer is `pending confirmation` (unless `ReturnSubscriptionArn`);
/// `file` subscriptions are confirmed at once.
pub async fn subscribe(
    state: &AppState,
    ctx: &RequestContext,
    input: SubscribeRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.topic_arn)?;
    let endpoint = input
        .endpoint
        .ok_or_else(|| invalid("Invalid parameter: Endpoint"))?;
    let protocol = cairn_notify::validate_subscription_endpoint(&input.protocol, &endpoint)?;
    for (name, value) in &input.attributes {
        cairn_notify::validate_subscription_attribute(name, value, protocol)?;
    }
    if protocol == Protocol::File {
        let roots = state.monitoring.file_roots().to_vec();
        let roots: Vec<&std::path::Path> = roots.iter().map(std::path::PathBuf::as_path).collect();
        cairn_notify::file_endpoint_path(&endpoint, &roots)?;
    }
    existing_topic(state, &arn).await?;
    let subscription = Subscription {
        arn: cairn_notify::subscription_arn(&arn),
        topic_arn: arn,
        account: ctx.account_id.clone(),
        protocol: protocol.as_str().to_owned(),
        endpoint,
        attributes: input.attributes,
        confirmed: protocol == Protocol::File,
        authenticated: protocol == Protocol::File,
        token: cairn_notify::confirmation_token()?,
    };
    let confirmation = if subscription.confirmed {
        None
    } else {
        Some(
            state
                .monitoring
                .confirmation_for(&subscription, state.monitoring.now())
                .map_err(AwsError::internal)?,
        )
    };
    let stored = store(state, move |m| {
        m.subscribe(&subscription, confirmation.as_ref())
    })
    .await?;
    if !stored.confirmed {
        state.monitoring.wake_deliveries();
    }
    let return_arn = input
        .return_subscription_arn
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let answer = if stored.confirmed || return_arn {
        stored.arn
    } else {
        "pending confirmation".to_owned()
    };
    Ok(json!({ "SubscriptionArn": answer }))
}

/// ConfirmSubscription's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfirmSubscriptionRequest {
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Token`.
    pub token: String,
    /// `AuthenticateOnUnsubscribe`.
    pub authenticate_on_unsubscribe: Option<String>,
}

/// ConfirmSubscription, signed (through the API) or not (the SubscribeURL):
/// the token authorizes it.
pub async fn confirm_subscription_as(
    state: &AppState,
    input: ConfirmSubscriptionRequest,
    signed: bool,
) -> Result<Value, AwsError> {
    TopicArn::parse(&input.topic_arn).map_err(|_| invalid("Invalid parameter: TopicArn"))?;
    let authenticated = signed
        && input
            .authenticate_on_unsubscribe
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let subscription = store(state, move |m| {
        m.confirm_subscription(&input.topic_arn, &input.token, authenticated)
    })
    .await?;
    Ok(json!({ "SubscriptionArn": subscription.arn }))
}

/// ConfirmSubscription through the API.
pub async fn confirm_subscription(
    state: &AppState,
    _ctx: &RequestContext,
    input: ConfirmSubscriptionRequest,
) -> Result<Value, AwsError> {
    confirm_subscription_as(state, input, true).await
}

fn subscription_shape(s: &Subscription) -> Value {
    json!({
        "SubscriptionArn": if s.confirmed { s.arn.clone() } else { "PendingConfirmation".to_owned() },
        "Owner": s.account,
        "Protocol": s.protocol,
        "Endpoint": s.endpoint,
        "TopicArn": s.topic_arn,
    })
}

/// ListSubscriptions.
pub async fn list_subscriptions(
    state: &AppState,
    ctx: &RequestContext,
    input: PageRequest,
) -> Result<Value, AwsError> {
    let account = ctx.account_id.clone();
    let (subscriptions, next) = store(state, move |m| {
        m.subscriptions(&account, None, input.next_token.as_deref(), PAGE)
    })
    .await?;
    let listed: Vec<Value> = subscriptions.iter().map(subscription_shape).collect();
    Ok(json!({ "Subscriptions": listed, "NextToken": next }))
}

/// ListSubscriptionsByTopic's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListByTopicRequest {
    /// `TopicArn`.
    pub topic_arn: String,
    /// `NextToken`.
    pub next_token: Option<String>,
}

/// ListSubscriptionsByTopic.
pub async fn list_subscriptions_by_topic(
    state: &AppState,
    ctx: &RequestContext,
    input: ListByTopicRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.topic_arn)?;
    existing_topic(state, &arn).await?;
    let account = ctx.account_id.clone();
    let (subscriptions, next) = store(state, move |m| {
        m.subscriptions(&account, Some(&arn), input.next_token.as_deref(), PAGE)
    })
    .await?;
    let listed: Vec<Value> = subscriptions.iter().map(subscription_shape).collect();
    Ok(json!({ "Subscriptions": listed, "NextToken": next }))
}

/// An input naming a subscription.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscriptionRequest {
    /// `SubscriptionArn`.
    pub subscription_arn: String,
}

/// Unsubscribe, signed or (the UnsubscribeURL) not: an unsigned request is
/// refused for a subscription confirmed with AuthenticateOnUnsubscribe.
pub async fn unsubscribe_as(
    state: &AppState,
    input: SubscriptionRequest,
    signed: bool,
) -> Result<Value, AwsError> {
    let arn = input.subscription_arn;
    let lookup = arn.clone();
    let subscription = store(state, move |m| m.subscription(&lookup))
        .await?
        .ok_or_else(|| not_found("Subscription does not exist"))?;
    if !signed && subscription.authenticated && subscription.protocol != "file" {
        return Err(AwsError::with_status(
            "AuthorizationError",
            "Unsubscribe of this subscription requires authentication",
            axum::http::StatusCode::FORBIDDEN,
        ));
    }
    store(state, move |m| m.unsubscribe(&arn)).await?;
    Ok(json!({}))
}

/// Unsubscribe through the API.
pub async fn unsubscribe(
    state: &AppState,
    _ctx: &RequestContext,
    input: SubscriptionRequest,
) -> Result<Value, AwsError> {
    unsubscribe_as(state, input, true).await
}

/// GetSubscriptionAttributes.
pub async fn get_subscription_attributes(
    state: &AppState,
    ctx: &RequestContext,
    input: SubscriptionRequest,
) -> Result<Value, AwsError> {
    let arn = input.subscription_arn;
    let subscription = store(state, move |m| m.subscription(&arn))
        .await?
        .ok_or_else(|| not_found("Subscription does not exist"))?;
    let topic = existing_topic(state, &subscription.topic_arn).await.ok();
    let protocol = match subscription.protocol.as_str() {
        "https" => Protocol::Https,
        "file" => Protocol::File,
        _ => Protocol::Http,
    };
    let facts = cairn_notify::SubscriptionFacts {
        owner: &ctx.account_id,
        subscription_arn: &subscription.arn,
        topic_arn: &subscription.topic_arn,
        protocol,
        endpoint: &subscription.endpoint,
        pending_confirmation: !subscription.confirmed,
        confirmation_was_authenticated: subscription.authenticated,
    };
    let attributes = cairn_notify::subscription_attributes(
        &facts,
        &subscription.attributes,
        topic
            .as_ref()
            .and_then(|t| t.attributes.get("DeliveryPolicy"))
            .map(String::as_str),
    );
    Ok(json!({ "Attributes": xml_map(attributes) }))
}

/// SetSubscriptionAttributes.
pub async fn set_subscription_attributes(
    state: &AppState,
    _ctx: &RequestContext,
    input: SetAttributeRequest,
) -> Result<Value, AwsError> {
    let arn = input
        .subscription_arn
        .ok_or_else(|| invalid("Invalid parameter: SubscriptionArn"))?;
    let lookup = arn.clone();
    let subscription = store(state, move |m| m.subscription(&lookup))
        .await?
        .ok_or_else(|| not_found("Subscription does not exist"))?;
    let protocol = cairn_notify::validate_subscription_endpoint(
        &subscription.protocol,
        &subscription.endpoint,
    )?;
    cairn_notify::validate_subscription_attribute(
        &input.attribute_name,
        &input.attribute_value,
        protocol,
    )?;
    store(state, move |m| {
        m.set_subscription_attribute(&arn, &input.attribute_name, &input.attribute_value)
    })
    .await?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------
// Publish

/// A message attribute in Publish's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageAttributeValue {
    /// `DataType`.
    pub data_type: String,
    /// `StringValue`.
    pub string_value: Option<String>,
    /// `BinaryValue` (base64).
    pub binary_value: Option<String>,
}

/// Publish's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishRequest {
    /// `TopicArn`.
    pub topic_arn: Option<String>,
    /// `TargetArn`.
    pub target_arn: Option<String>,
    /// `PhoneNumber` (refused: Cairn sends no SMS).
    pub phone_number: Option<String>,
    /// `Message`.
    pub message: String,
    /// `Subject`.
    pub subject: Option<String>,
    /// `MessageStructure`.
    pub message_structure: Option<String>,
    /// `MessageAttributes`.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
}

/// Publish: every confirmed subscription's notification is in the outbox
/// (durable) before the answer.
pub async fn publish(
    state: &AppState,
    ctx: &RequestContext,
    input: PublishRequest,
) -> Result<Value, AwsError> {
    if input.phone_number.is_some() {
        return Err(invalid(
            "Invalid parameter: PhoneNumber Reason: Cairn does not send SMS",
        ));
    }
    let arn = match (input.topic_arn, input.target_arn) {
        (Some(a), None) | (None, Some(a)) => topic_arn(ctx, &a)?,
        (Some(_), Some(_)) => {
            return Err(invalid(
                "Invalid parameter: TopicArn or TargetArn Reason: Only one of them may be specified",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
            ));
        }
    };
    let attributes: BTreeMap<String, MessageAttribute> = input
        .message_attributes
        .into_iter()
        .map(|(name, v)| {
            (
                name,
                MessageAttribute {
                    data_type: v.data_type,
                    value: v.string_value.or(v.binary_value).unwrap_or_default(),
                },
            )
        })
        .collect();
    cairn_notify::validate_publish(
        &input.message,
        input.subject.as_deref(),
        input.message_structure.as_deref(),
        &attributes,
    )?;
    let topic = existing_topic(state, &arn).await?;
    let signature_version = topic
        .attributes
        .get("SignatureVersion")
        .and_then(|v| SignatureVersion::parse(v))
        .unwrap_or(SignatureVersion::V1);
    let monitoring = state.monitoring.clone();
    let message_id = blocking(move || {
        let structure = input.message_structure.as_deref();
        let message = &input.message;
        monitoring
            .publish_blocking(
                &arn,
                input.subject.as_deref(),
                &|protocol| cairn_notify::message_for_protocol(message, structure, protocol),
                &attributes,
                signature_version,
            )
            .map_err(AwsError::internal)
    })
    .await?;
    Ok(json!({ "MessageId": message_id }))
}

// ---------------------------------------------------------------------------
// Tags

/// TagResource's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    /// `ResourceArn`.
    pub resource_arn: String,
    /// `Tags`.
    pub tags: Vec<SnsTag>,
}

/// TagResource.
pub async fn tag_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: TagResourceRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.resource_arn)?;
    let tags = tags_of(input.tags)?;
    store(state, move |m| m.change_topic_tags(&arn, &tags, &[])).await?;
    Ok(json!({}))
}

/// UntagResource's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    /// `ResourceArn`.
    pub resource_arn: String,
    /// `TagKeys`.
    pub tag_keys: Vec<String>,
}

/// UntagResource.
pub async fn untag_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: UntagResourceRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.resource_arn)?;
    store(state, move |m| {
        m.change_topic_tags(&arn, &BTreeMap::new(), &input.tag_keys)
    })
    .await?;
    Ok(json!({}))
}

/// ListTagsForResource's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsRequest {
    /// `ResourceArn`.
    pub resource_arn: String,
}

/// ListTagsForResource.
pub async fn list_tags_for_resource(
    state: &AppState,
    ctx: &RequestContext,
    input: ListTagsRequest,
) -> Result<Value, AwsError> {
    let arn = topic_arn(ctx, &input.resource_arn)?;
    let topic = existing_topic(state, &arn).await?;
    let tags: Vec<Value> = topic
        .tags
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(json!({ "Tags": tags }))
}
