//! The operation table: every operation Cairn serves, in one list.
//!
//! A row names the service (its SigV4 signing name), the operation as AWS
//! names it, the IAM action a policy grants it by, the resources it touches
//! (a function of the request) and its handler. Dispatch finds the row from
//! the decoded request (HTTP → SigV4 → codec → row → service), so
//! authorization and self-audit attach here, once, for every service.
//!
//! S3 has one row per operation of its model, found by S3's own router
//! (`handlers::s3::operation_of`: method, path, query and headers); their
//! handler is the S3 handler, which serves the operation or answers
//! `NotImplemented`.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use axum::http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AwsError;
use crate::handlers::s3::operation::S3Operation;
use crate::protocol::{Input, Output};
use crate::services;
use crate::state::{AppState, RequestContext};

/// What a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Output, AwsError>> + Send>>;

/// A request as a handler receives it.
#[derive(Debug)]
pub struct Call {
    /// Shared state.
    pub state: AppState,
    /// Who asked, in which region.
    pub ctx: RequestContext,
    /// The decoded input.
    pub input: Input,
}

/// How a request names its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// By name (`X-Amz-Target` or `Action`).
    Name,
    /// By method and exact path (REST-JSON).
    Path {
        /// The HTTP method.
        method: &'static str,
        /// The path.
        path: &'static str,
    },
    /// S3: the operation S3's router names from method, path, query and
    /// headers (`handlers::s3::operation::route`).
    S3(S3Operation),
}

/// One served operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The SigV4 signing name of its service.
    pub service: &'static str,
    /// Its name, as AWS names it.
    pub name: &'static str,
    /// The IAM action that grants it.
    pub action: &'static str,
    /// How requests name it.
    pub binding: Binding,
    /// The ARNs it touches (`*` where IAM takes no resource).
    pub resources: fn(&RequestContext, &Input) -> Vec<String>,
    /// What serves it.
    pub handler: fn(Call) -> HandlerFuture,
}

/// Decodes a JSON input into an operation's typed request.
pub fn decode_json<I: DeserializeOwned>(input: Input) -> Result<I, AwsError> {
    let map = match input {
        Input::Json(map) => map,
        // A query-compatible service's older clients, and query services
        // whose inputs are typed once: the parameters in the JSON shape.
        Input::Query(params) => crate::protocol::query::params_to_json(&params),
        Input::Rest { .. } => {
            return Err(AwsError::internal("a JSON operation received a REST input"));
        }
    };
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| AwsError::client("SerializationException", e.to_string()))
}

/// Encodes an operation's typed result as JSON.
pub fn encode_json<O: Serialize>(output: &O) -> Result<Output, AwsError> {
    serde_json::to_value(output)
        .map(Output::Json)
        .map_err(AwsError::internal)
}

/// A row's handler for a JSON operation `services::<svc>::<op>(state, ctx, typed input)`.
macro_rules! json_handler {
    ($f:path) => {
        |call: Call| -> HandlerFuture {
            Box::pin(async move {
                let input = decode_json(call.input)?;
                let output = $f(&call.state, &call.ctx, input).await?;
                encode_json(&output)
            })
        }
    };
}

fn no_resource(_: &RequestContext, _: &Input) -> Vec<String> {
    vec!["*".to_owned()]
}

fn trail_named_by(ctx: &RequestContext, input: &Input, member: &str) -> Vec<String> {
    input
        .json_str(member)
        .map(|n| vec![services::cloudtrail::trail_arn_of(ctx, n)])
        .unwrap_or_default()
}

fn trail_by_name(ctx: &RequestContext, input: &Input) -> Vec<String> {
    trail_named_by(ctx, input, "Name")
}

fn trail_by_trail_name(ctx: &RequestContext, input: &Input) -> Vec<String> {
    trail_named_by(ctx, input, "TrailName")
}

fn trail_by_resource_id(ctx: &RequestContext, input: &Input) -> Vec<String> {
    trail_named_by(ctx, input, "ResourceId")
}

fn trails_listed(ctx: &RequestContext, input: &Input) -> Vec<String> {
    let Input::Json(map) = input else {
        return Vec::new();
    };
    let names = map
        .get("trailNameList")
        .or_else(|| map.get("ResourceIdList"))
        .and_then(|v| v.as_array());
    match names {
        Some(names) if !names.is_empty() => names
            .iter()
            .filter_map(|n| n.as_str())
            .map(|n| services::cloudtrail::trail_arn_of(ctx, n))
            .collect(),
        _ => no_resource(ctx, input),
    }
}

fn organization(ctx: &RequestContext, _: &Input) -> Vec<String> {
    vec![format!(
        "arn:aws:organizations::{}:organization/*",
        ctx.account_id
    )]
}

fn s3_resource(_: &RequestContext, input: &Input) -> Vec<String> {
    let Some((_, path)) = input.rest_route() else {
        return Vec::new();
    };
    match path.trim_start_matches('/') {
        "" => vec!["*".to_owned()],
        bucket_and_key => vec![format!("arn:aws:s3:::{bucket_and_key}")],
    }
}

fn s3_handler(call: Call) -> HandlerFuture {
    Box::pin(async move {
        let Input::Rest { parts, body } = call.input else {
            return Err(AwsError::internal("S3 received a non-REST input"));
        };
        Ok(Output::Response(
            crate::handlers::s3::handle(&call.state, &call.ctx, &parts, body).await,
        ))
    })
}

fn ingest_handler(call: Call) -> HandlerFuture {
    Box::pin(async move {
        let Input::Rest { parts, body } = call.input else {
            return Err(AwsError::internal("ingest received a non-REST input"));
        };
        let output =
            services::ingest::put_records(&call.state, &call.ctx.region, &parts.headers, &body)
                .await?;
        encode_json(&output)
    })
}

fn get_caller_identity(call: Call) -> HandlerFuture {
    Box::pin(async move {
        let output = services::sts::get_caller_identity(&call.ctx);
        Ok(Output::Xml(output.to_xml()))
    })
}

macro_rules! cloudtrail {
    ($name:literal, $resources:expr, $f:path) => {
        Operation {
            service: "cloudtrail",
            name: $name,
            action: concat!("cloudtrail:", $name),
            binding: Binding::Name,
            resources: $resources,
            handler: json_handler!($f),
        }
    };
}

use services::cloudtrail as ct;
use services::lake;

/// The event data store a Lake request names (its ARN, or its ID).
fn event_data_store(ctx: &RequestContext, input: &Input) -> Vec<String> {
    match input.json_str("EventDataStore") {
        Some(arn) if arn.starts_with("arn:") => vec![arn.to_owned()],
        Some(id) => vec![format!(
            "arn:aws:cloudtrail:{}:{}:eventdatastore/{id}",
            ctx.region, ctx.account_id
        )],
        None => no_resource(ctx, input),
    }
}

macro_rules! athena {
    ($name:literal, $f:path) => {
        Operation {
            service: "athena",
            name: $name,
            action: concat!("athena:", $name),
            binding: Binding::Name,
            resources: athena_workgroup,
            handler: json_handler!($f),
        }
    };
}

macro_rules! glue {
    ($name:literal, $f:path) => {
        Operation {
            service: "glue",
            name: $name,
            action: concat!("glue:", $name),
            binding: Binding::Name,
            resources: glue_resource,
            handler: json_handler!($f),
        }
    };
}

/// The workgroup an Athena request runs in (only `primary` exists).
fn athena_workgroup(ctx: &RequestContext, _: &Input) -> Vec<String> {
    vec![format!(
        "arn:aws:athena:{}:{}:workgroup/primary",
        ctx.region, ctx.account_id
    )]
}

/// The catalog, database and table a Glue request names, as IAM names them.
fn glue_resource(ctx: &RequestContext, input: &Input) -> Vec<String> {
    let base = format!("arn:aws:glue:{}:{}", ctx.region, ctx.account_id);
    let mut out = vec![format!("{base}:catalog")];
    let database = input.json_str("DatabaseName").or_else(|| {
        input
            .json_str("Name")
            .filter(|_| input.json_str("DatabaseName").is_none())
    });
    if let Some(database) = database {
        out.push(format!("{base}:database/{database}"));
        if let (Some(db), Some(table)) = (input.json_str("DatabaseName"), input.json_str("Name")) {
            out.push(format!("{base}:table/{db}/{table}"));
        }
    }
    out
}
use services::cloudwatch as cw;
use services::logs;

macro_rules! monitoring {
    ($name:literal, $resources:expr, $f:path) => {
        Operation {
            service: "monitoring",
            name: $name,
            action: concat!("cloudwatch:", $name),
            binding: Binding::Name,
            resources: $resources,
            handler: services::cloudwatch::cloudwatch_handler!($f),
        }
    };
}

/// The alarm a CloudWatch request names, as IAM names it.
fn alarm_resource(ctx: &RequestContext, input: &Input) -> Vec<String> {
    let name = match input {
        Input::Json(map) => map
            .get("AlarmName")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        Input::Query(params) => params.get("AlarmName").cloned(),
        Input::Rest { .. } => None,
    };
    match name {
        Some(name) => vec![format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{name}",
            ctx.region, ctx.account_id
        )],
        None => no_resource(ctx, input),
    }
}

macro_rules! sns {
    ($name:literal, $resources:expr, $f:path) => {
        Operation {
            service: "sns",
            name: $name,
            action: concat!("sns:", $name),
            binding: Binding::Name,
            resources: $resources,
            handler: |call: Call| -> HandlerFuture {
                Box::pin(async move {
                    let input = decode_json(call.input)?;
                    Ok(Output::Json($f(&call.state, &call.ctx, input).await?))
                })
            },
        }
    };
}

/// The topic (or subscription) an SNS request names.
fn sns_resource(ctx: &RequestContext, input: &Input) -> Vec<String> {
    let Input::Query(params) = input else {
        return no_resource(ctx, input);
    };
    for member in ["TopicArn", "TargetArn", "ResourceArn", "SubscriptionArn"] {
        if let Some(arn) = params.get(member) {
            return vec![arn.clone()];
        }
    }
    match params.get("Name") {
        Some(name) => vec![format!(
            "arn:aws:sns:{}:{}:{name}",
            ctx.region, ctx.account_id
        )],
        None => no_resource(ctx, input),
    }
}

macro_rules! logs {
    ($name:literal, $resources:expr, $f:path) => {
        Operation {
            service: "logs",
            name: $name,
            action: concat!("logs:", $name),
            binding: Binding::Name,
            resources: $resources,
            handler: json_handler!($f),
        }
    };
}

/// The log group a CloudWatch Logs request names (`logGroupName`,
/// `logGroupIdentifier` or `resourceArn`), as IAM names it.
fn log_group_resource(ctx: &RequestContext, input: &Input) -> Vec<String> {
    if let Some(arn) = input.json_str("resourceArn").or_else(|| {
        input
            .json_str("logGroupIdentifier")
            .filter(|i| i.starts_with("arn:"))
    }) {
        return vec![arn.to_owned()];
    }
    match input
        .json_str("logGroupName")
        .or_else(|| input.json_str("logGroupIdentifier"))
    {
        Some(name) => vec![format!(
            "arn:aws:logs:{}:{}:log-group:{name}",
            ctx.region, ctx.account_id
        )],
        None => no_resource(ctx, input),
    }
}

/// Every operation Cairn serves: the named and REST rows below, then one row
/// per operation of S3's model (served or answered `NotImplemented` by the S3
/// handler), each with its IAM action.
pub static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let mut rows = NAMED_OPERATIONS.to_vec();
    rows.extend(S3Operation::ALL.iter().map(|op| Operation {
        service: "s3",
        name: op.name(),
        action: op.iam_action(),
        binding: Binding::S3(*op),
        resources: s3_resource,
        handler: s3_handler,
    }));
    rows
});

/// The operations of the services other than S3.
static NAMED_OPERATIONS: &[Operation] = &[
    cloudtrail!("CreateTrail", trail_by_name, ct::create_trail),
    cloudtrail!("GetTrail", trail_by_name, ct::get_trail),
    cloudtrail!("DescribeTrails", trails_listed, ct::describe_trails),
    cloudtrail!("ListTrails", no_resource, ct::list_trails),
    cloudtrail!("UpdateTrail", trail_by_name, ct::update_trail),
    cloudtrail!("DeleteTrail", trail_by_name, ct::delete_trail),
    cloudtrail!("StartLogging", trail_by_name, ct::start_logging),
    cloudtrail!("StopLogging", trail_by_name, ct::stop_logging),
    cloudtrail!("GetTrailStatus", trail_by_name, ct::get_trail_status),
    cloudtrail!(
        "PutEventSelectors",
        trail_by_trail_name,
        ct::put_event_selectors
    ),
    cloudtrail!(
        "GetEventSelectors",
        trail_by_trail_name,
        ct::get_event_selectors
    ),
    cloudtrail!(
        "PutInsightSelectors",
        trail_by_trail_name,
        ct::put_insight_selectors
    ),
    cloudtrail!(
        "GetInsightSelectors",
        trail_by_trail_name,
        ct::get_insight_selectors
    ),
    cloudtrail!("AddTags", trail_by_resource_id, ct::add_tags),
    cloudtrail!("RemoveTags", trail_by_resource_id, ct::remove_tags),
    cloudtrail!("ListTags", trails_listed, ct::list_tags),
    cloudtrail!("ListPublicKeys", no_resource, ct::list_public_keys),
    cloudtrail!("LookupEvents", no_resource, ct::lookup_events),
    cloudtrail!(
        "CreateEventDataStore",
        no_resource,
        lake::create_event_data_store
    ),
    cloudtrail!(
        "GetEventDataStore",
        event_data_store,
        lake::get_event_data_store
    ),
    cloudtrail!(
        "ListEventDataStores",
        no_resource,
        lake::list_event_data_stores
    ),
    cloudtrail!(
        "UpdateEventDataStore",
        event_data_store,
        lake::update_event_data_store
    ),
    cloudtrail!(
        "DeleteEventDataStore",
        event_data_store,
        lake::delete_event_data_store
    ),
    cloudtrail!(
        "RestoreEventDataStore",
        event_data_store,
        lake::restore_event_data_store
    ),
    cloudtrail!(
        "StartEventDataStoreIngestion",
        event_data_store,
        lake::start_event_data_store_ingestion
    ),
    cloudtrail!(
        "StopEventDataStoreIngestion",
        event_data_store,
        lake::stop_event_data_store_ingestion
    ),
    cloudtrail!("StartQuery", no_resource, lake::start_query),
    cloudtrail!("DescribeQuery", event_data_store, lake::describe_query),
    cloudtrail!("GetQueryResults", event_data_store, lake::get_query_results),
    cloudtrail!("CancelQuery", event_data_store, lake::cancel_query),
    cloudtrail!("ListQueries", event_data_store, lake::list_queries),
    cloudtrail!("StartImport", no_resource, lake::start_import),
    cloudtrail!("GetImport", no_resource, lake::get_import),
    cloudtrail!("StopImport", no_resource, lake::stop_import),
    cloudtrail!("ListImports", no_resource, lake::list_imports),
    logs!("CreateLogGroup", log_group_resource, logs::create_log_group),
    logs!("DescribeLogGroups", no_resource, logs::describe_log_groups),
    logs!("DeleteLogGroup", log_group_resource, logs::delete_log_group),
    logs!(
        "PutRetentionPolicy",
        log_group_resource,
        logs::put_retention_policy
    ),
    logs!(
        "DeleteRetentionPolicy",
        log_group_resource,
        logs::delete_retention_policy
    ),
    logs!(
        "CreateLogStream",
        log_group_resource,
        logs::create_log_stream
    ),
    logs!(
        "DeleteLogStream",
        log_group_resource,
        logs::delete_log_stream
    ),
    logs!(
        "DescribeLogStreams",
        log_group_resource,
        logs::describe_log_streams
    ),
    logs!("PutLogEvents", log_group_resource, logs::put_log_events),
    logs!("GetLogEvents", log_group_resource, logs::get_log_events),
    logs!(
        "FilterLogEvents",
        log_group_resource,
        logs::filter_log_events
    ),
    logs!(
        "PutMetricFilter",
        log_group_resource,
        logs::put_metric_filter
    ),
    logs!(
        "DescribeMetricFilters",
        log_group_resource,
        logs::describe_metric_filters
    ),
    logs!(
        "DeleteMetricFilter",
        log_group_resource,
        logs::delete_metric_filter
    ),
    logs!("TestMetricFilter", no_resource, logs::test_metric_filter),
    logs!("TagLogGroup", log_group_resource, logs::tag_log_group),
    logs!("UntagLogGroup", log_group_resource, logs::untag_log_group),
    logs!(
        "ListTagsLogGroup",
        log_group_resource,
        logs::list_tags_log_group
    ),
    logs!("TagResource", log_group_resource, logs::tag_resource),
    logs!("UntagResource", log_group_resource, logs::untag_resource),
    logs!(
        "ListTagsForResource",
        log_group_resource,
        logs::list_tags_for_resource
    ),
    monitoring!("PutMetricAlarm", alarm_resource, cw::put_metric_alarm),
    monitoring!("DescribeAlarms", no_resource, cw::describe_alarms),
    monitoring!(
        "DescribeAlarmsForMetric",
        no_resource,
        cw::describe_alarms_for_metric
    ),
    monitoring!(
        "DescribeAlarmHistory",
        alarm_resource,
        cw::describe_alarm_history
    ),
    monitoring!("DeleteAlarms", no_resource, cw::delete_alarms),
    monitoring!("SetAlarmState", alarm_resource, cw::set_alarm_state),
    monitoring!("EnableAlarmActions", no_resource, cw::enable_alarm_actions),
    monitoring!(
        "DisableAlarmActions",
        no_resource,
        cw::disable_alarm_actions
    ),
    monitoring!("PutMetricData", no_resource, cw::put_metric_data),
    monitoring!("ListMetrics", no_resource, cw::list_metrics),
    monitoring!(
        "GetMetricStatistics",
        no_resource,
        cw::get_metric_statistics
    ),
    monitoring!("GetMetricData", no_resource, cw::get_metric_data),
    monitoring!("TagResource", no_resource, cw::tag_resource),
    monitoring!("UntagResource", no_resource, cw::untag_resource),
    monitoring!(
        "ListTagsForResource",
        no_resource,
        cw::list_tags_for_resource
    ),
    sns!("CreateTopic", sns_resource, services::sns::create_topic),
    sns!("ListTopics", no_resource, services::sns::list_topics),
    sns!(
        "GetTopicAttributes",
        sns_resource,
        services::sns::get_topic_attributes
    ),
    sns!(
        "SetTopicAttributes",
        sns_resource,
        services::sns::set_topic_attributes
    ),
    sns!("DeleteTopic", sns_resource, services::sns::delete_topic),
    sns!("Subscribe", sns_resource, services::sns::subscribe),
    sns!(
        "ConfirmSubscription",
        sns_resource,
        services::sns::confirm_subscription
    ),
    sns!(
        "ListSubscriptions",
        no_resource,
        services::sns::list_subscriptions
    ),
    sns!(
        "ListSubscriptionsByTopic",
        sns_resource,
        services::sns::list_subscriptions_by_topic
    ),
    sns!("Unsubscribe", sns_resource, services::sns::unsubscribe),
    sns!(
        "GetSubscriptionAttributes",
        sns_resource,
        services::sns::get_subscription_attributes
    ),
    sns!(
        "SetSubscriptionAttributes",
        sns_resource,
        services::sns::set_subscription_attributes
    ),
    sns!("Publish", sns_resource, services::sns::publish),
    sns!("TagResource", sns_resource, services::sns::tag_resource),
    sns!("UntagResource", sns_resource, services::sns::untag_resource),
    sns!(
        "ListTagsForResource",
        sns_resource,
        services::sns::list_tags_for_resource
    ),
    Operation {
        service: "cloudtrail-data",
        // Cairn's own ingest endpoint; a policy grants it as AWS's ingest API is granted.
        name: "PutRecords",
        action: "cloudtrail-data:PutAuditEvents",
        binding: Binding::Path {
            method: "POST",
            path: services::ingest::INGEST_PATH,
        },
        resources: no_resource,
        handler: ingest_handler,
    },
    athena!(
        "StartQueryExecution",
        services::athena::start_query_execution
    ),
    athena!("GetQueryExecution", services::athena::get_query_execution),
    athena!("GetQueryResults", services::athena::get_query_results),
    athena!("StopQueryExecution", services::athena::stop_query_execution),
    athena!(
        "ListQueryExecutions",
        services::athena::list_query_executions
    ),
    athena!(
        "BatchGetQueryExecution",
        services::athena::batch_get_query_execution
    ),
    athena!("GetWorkGroup", services::athena::get_work_group),
    athena!("ListDataCatalogs", services::glue::list_data_catalogs),
    athena!("ListDatabases", services::glue::list_databases),
    athena!("ListTableMetadata", services::glue::list_table_metadata),
    athena!("GetTableMetadata", services::glue::get_table_metadata),
    glue!("GetDatabases", services::glue::get_databases),
    glue!("GetDatabase", services::glue::get_database),
    glue!("CreateDatabase", services::glue::create_database),
    glue!("GetTables", services::glue::get_tables),
    glue!("GetTable", services::glue::get_table),
    glue!("DeleteTable", services::glue::delete_table),
    Operation {
        service: "organizations",
        name: "DescribeOrganization",
        action: "organizations:DescribeOrganization",
        binding: Binding::Name,
        resources: organization,
        handler: json_handler!(services::organizations::describe_organization),
    },
    Operation {
        service: "sts",
        name: "GetCallerIdentity",
        action: "sts:GetCallerIdentity",
        binding: Binding::Name,
        resources: no_resource,
        handler: get_caller_identity,
    },
];

/// Whether Cairn serves a service (by signing name).
pub fn serves(service: &str) -> bool {
    OPERATIONS.iter().any(|o| o.service == service)
}

/// The signing names of the services Cairn serves, each once.
pub fn served_services() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = OPERATIONS.iter().map(|o| o.service).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The row serving a decoded request, if any.
pub fn find(service: &str, operation: Option<&str>, input: &Input) -> Option<&'static Operation> {
    let s3 = match input {
        Input::Rest { parts, .. } if service == "s3" => crate::handlers::s3::operation_of(parts),
        _ => None,
    };
    OPERATIONS
        .iter()
        .filter(|o| o.service == service)
        .find(|o| match (o.binding, operation, input.rest_route()) {
            (Binding::Name, Some(name), _) => o.name == name,
            (Binding::Path { method, path }, _, Some((m, p))) => m == method && p == path,
            (Binding::S3(op), _, _) => s3 == Some(op),
            _ => false,
        })
}

/// Whether S3 has operations for a method (GET, HEAD, PUT, POST, DELETE).
pub fn is_s3_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rows_are_unique_and_name_their_iam_action() {
        let mut seen = std::collections::BTreeSet::new();
        for o in OPERATIONS.iter() {
            assert!(
                seen.insert((o.service, o.name)),
                "{} {} twice",
                o.service,
                o.name
            );
            let (prefix, action) = o.action.split_once(':').expect("service:Action");
            assert!(!prefix.is_empty() && !action.is_empty(), "{}", o.action);
        }
        assert_eq!(
            served_services(),
            [
                "athena",
                "cloudtrail",
                "cloudtrail-data",
                "glue",
                "logs",
                "monitoring",
                "organizations",
                "s3",
                "sns",
                "sts"
            ]
        );
    }

    #[test]
    fn test_every_served_json_service_is_in_the_botocore_table() {
        for service in served_services() {
            assert!(
                crate::protocol::AWS_SERVICES
                    .iter()
                    .any(|s| s.signing_name == service),
                "{service}"
            );
        }
    }

    #[test]
    fn test_every_s3_operation_has_its_row_found_by_routing() {
        let request = |method: Method, uri: &str| {
            let (parts, ()) = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts();
            Input::Rest {
                parts: Box::new(parts),
                body: bytes::Bytes::new(),
            }
        };
        for (method, uri, name, action) in [
            (Method::GET, "/", "ListBuckets", "s3:ListAllMyBuckets"),
            (
                Method::GET,
                "/b?list-type=2",
                "ListObjectsV2",
                "s3:ListBucket",
            ),
            (
                Method::PUT,
                "/b/k?partNumber=1&uploadId=u",
                "UploadPart",
                "s3:PutObject",
            ),
            (
                Method::DELETE,
                "/b?policy",
                "DeleteBucketPolicy",
                "s3:DeleteBucketPolicy",
            ),
            (
                Method::PUT,
                "/b?versioning",
                "PutBucketVersioning",
                "s3:PutBucketVersioning",
            ),
        ] {
            let row = find("s3", None, &request(method, uri)).expect(uri);
            assert_eq!((row.name, row.action), (name, action), "{uri}");
        }
        assert_eq!(
            OPERATIONS.iter().filter(|o| o.service == "s3").count(),
            S3Operation::ALL.len()
        );
    }
}
