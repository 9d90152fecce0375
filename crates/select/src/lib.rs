//! CloudTrail event selectors: which records a trail delivers.
//!
//! * **Basic** selectors (`EventSelector`): an event is logged if it matches
//!   any selector. Management events match when `IncludeManagementEvents`
//!   (default true), the `ReadWriteType` allows the event's `readOnly`, and its
//!   source is not excluded. Data events match a `DataResources` entry of their
//!   resource type: `arn:<partition>:s3` / `:lambda` / `:dynamodb` for all, an S3
//!   ARN prefix, an exact Lambda function ARN. Insights and network activity
//!   events never match basic selectors.
//! * **Advanced** selectors: OR across selectors, AND across the field
//!   selectors of one selector. Within a field selector the values of a
//!   positive operator are OR-ed, a negative operator excludes every listed
//!   value, and several operators on one field must all hold.
//! * **Scope** ([`TrailScope`]): the accounts and regions a trail sees before
//!   its selectors apply.
//!
//! Where AWS is silent: a record without `readOnly` matches `ReadWriteType:
//! All` only, and matches neither `readOnly` value of an advanced selector;
//! list fields (`resources.*`) match an operator when any resource does, and
//! a negative operator holds when no resource has a listed value.

mod basic;
mod error;
mod scope;
mod stored;

pub use basic::{DataResource, EventSelector, ReadWriteType};
pub use error::SelectorError;
pub use scope::{GLOBAL_SERVICE_REGION, TrailScope, is_global_service};
pub use stored::{selectors_from_stored, selectors_to_stored};

use cairn_model::RecordView;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An advanced event selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvancedEventSelector {
    /// An optional name.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field conditions, all of which must hold.
    #[serde(rename = "FieldSelectors")]
    pub field_selectors: Vec<AdvancedFieldSelector>,
}

/// One condition of an advanced event selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvancedFieldSelector {
    /// The field.
    #[serde(rename = "Field")]
    pub field: String,
    /// Equals any of.
    #[serde(rename = "Equals", default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Vec<String>>,
    /// Starts with any of.
    #[serde(
        rename = "StartsWith",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_with: Option<Vec<String>>,
    /// Ends with any of.
    #[serde(rename = "EndsWith", default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<Vec<String>>,
    /// Equals none of.
    #[serde(rename = "NotEquals", default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<Vec<String>>,
    /// Starts with none of.
    #[serde(
        rename = "NotStartsWith",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_starts_with: Option<Vec<String>>,
    /// Ends with none of.
    #[serde(
        rename = "NotEndsWith",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_ends_with: Option<Vec<String>>,
}

const OPERATORS: [&str; 6] = [
    "Equals",
    "StartsWith",
    "EndsWith",
    "NotEquals",
    "NotStartsWith",
    "NotEndsWith",
];

/// The fields an advanced selector may name.
pub const ADVANCED_FIELDS: [&str; 11] = [
    "eventCategory",
    "eventSource",
    "eventName",
    "eventType",
    "readOnly",
    "resources.type",
    "resources.ARN",
    "userIdentity.arn",
    "errorCode",
    "sessionCredentialFromConsole",
    "vpcEndpointId",
];

/// A trail's or event data store's selectors: one kind or the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selectors {
    /// Basic event selectors.
    Basic(Vec<EventSelector>),
    /// Advanced event selectors.
    Advanced(Vec<AdvancedEventSelector>),
}

impl Selectors {
    /// What a new trail logs: all management events, no data events.
    pub fn default_for_new_trail() -> Self {
        Selectors::Basic(vec![EventSelector::default_all_management()])
    }

    /// Whether these differ from the default.
    pub fn has_custom_event_selectors(&self) -> bool {
        *self != Self::default_for_new_trail()
    }
}

/// What the selectors are for: trails and event data stores allow different fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorTarget {
    /// A trail.
    Trail,
    /// An event data store.
    EventDataStore,
}

/// Parses advanced selectors from request JSON, refusing unknown operators
/// and members with a message that names them.
pub fn parse_advanced_event_selectors(
    value: &Value,
) -> Result<Vec<AdvancedEventSelector>, SelectorError> {
    let items = value
        .as_array()
        .ok_or_else(|| SelectorError::invalid("AdvancedEventSelectors must be a list."))?;
    for item in items {
        let obj = item.as_object().ok_or_else(|| {
            SelectorError::invalid("Each advanced event selector must be an object.")
        })?;
        for key in obj.keys() {
            if key != "Name" && key != "FieldSelectors" {
                return Err(SelectorError::invalid(format!(
                    "Unknown member {key} in an advanced event selector."
                )));
            }
        }
        let fields = obj
            .get("FieldSelectors")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                SelectorError::invalid("Each advanced event selector needs a FieldSelectors list.")
            })?;
        for fs in fields {
            let fso = fs
                .as_object()
                .ok_or_else(|| SelectorError::invalid("Each field selector must be an object."))?;
            for key in fso.keys() {
                if key != "Field" && !OPERATORS.contains(&key.as_str()) {
                    return Err(SelectorError::invalid(format!(
                        "Invalid operator {key}. Valid operators are Equals, StartsWith, EndsWith, NotEquals, NotStartsWith, NotEndsWith."
                    )));
                }
            }
        }
    }
    serde_json::from_value(value.clone())
        .map_err(|e| SelectorError::invalid(format!("Advanced event selectors are not valid: {e}")))
}

/// Checks basic selectors against CloudTrail's rules.
pub fn validate_event_selectors(selectors: &[EventSelector]) -> Result<(), SelectorError> {
    basic::validate(selectors)
}

/// Checks advanced selectors against CloudTrail's rules.
pub fn validate_advanced_event_selectors(
    selectors: &[AdvancedEventSelector],
    target: SelectorTarget,
) -> Result<(), SelectorError> {
    if selectors.is_empty() {
        return Err(SelectorError::invalid(
            "Specify at least one advanced event selector.",
        ));
    }
    if target == SelectorTarget::EventDataStore && selectors.len() > 5 {
        return Err(SelectorError::invalid(
            "An event data store can have at most 5 advanced event selectors.",
        ));
    }
    let mut total_values = 0usize;
    for selector in selectors {
        if selector
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > 1000)
        {
            return Err(SelectorError::invalid(
                "Selector name must be at most 1000 characters.",
            ));
        }
        if selector.field_selectors.is_empty() {
            return Err(SelectorError::invalid(
                "Each advanced event selector needs at least one field selector.",
            ));
        }
        let mut category: Option<Vec<String>> = None;
        let mut resource_types = 0;
        for fs in &selector.field_selectors {
            if !ADVANCED_FIELDS.contains(&fs.field.as_str()) {
                return Err(SelectorError::invalid(format!(
                    "Invalid field {}. Valid fields are {}.",
                    fs.field,
                    ADVANCED_FIELDS.join(", ")
                )));
            }
            let ops = operators(fs);
            if ops.is_empty() {
                return Err(SelectorError::invalid(format!(
                    "Field selector {} needs at least one operator.",
                    fs.field
                )));
            }
            for (op, values) in &ops {
                if values.is_empty() {
                    return Err(SelectorError::invalid(format!(
                        "Operator {op} of {} needs at least one value.",
                        fs.field
                    )));
                }
                for v in *values {
                    if v.is_empty() || v.chars().count() > 2048 {
                        return Err(SelectorError::invalid(format!(
                            "Values of {} must be 1 to 2048 characters.",
                            fs.field
                        )));
                    }
                }
                total_values += values.len();
            }
            let equals_only = matches!(
                fs.field.as_str(),
                "eventCategory" | "readOnly" | "resources.type"
            );
            if equals_only && (ops.len() != 1 || ops[0].0 != "Equals") {
                return Err(SelectorError::invalid(format!(
                    "Field {} supports only the Equals operator.",
                    fs.field
                )));
            }
            match fs.field.as_str() {
                "eventCategory" => {
                    let allowed: &[&str] = match target {
                        SelectorTarget::Trail => &["Management", "Data", "NetworkActivity"],
                        SelectorTarget::EventDataStore => &[
                            "Management",
                            "Data",
                            "NetworkActivity",
                            "Insight",
                            "ConfigurationItem",
                            "Evidence",
                            "ActivityAuditLog",
                        ],
                    };
                    for v in fs.equals.iter().flatten() {
                        if !allowed.contains(&v.as_str()) {
                            return Err(SelectorError::invalid(format!(
                                "Invalid value {v} for eventCategory. Valid values are {}.",
                                allowed.join(", ")
                            )));
                        }
                    }
                    category = fs.equals.clone();
                }
                "readOnly" => {
                    for v in fs.equals.iter().flatten() {
                        if v != "true" && v != "false" {
                            return Err(SelectorError::invalid(format!(
                                "Invalid value {v} for readOnly. Valid values are true, false."
                            )));
                        }
                    }
                }
                "resources.type" => resource_types += 1,
                "errorCode" => {
                    for (_, values) in &ops {
                        if values.iter().any(|v| v != "VpceAccessDenied") {
                            return Err(SelectorError::invalid(
                                "errorCode supports only the value VpceAccessDenied.",
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        let category = category.ok_or_else(|| {
            SelectorError::invalid(
                "Each advanced event selector must have an eventCategory field selector.",
            )
        })?;
        if resource_types > 1 {
            return Err(SelectorError::invalid(
                "An advanced event selector can have only one resources.type field selector.",
            ));
        }
        let is = |c: &str| category.iter().any(|v| v == c);
        if is("Data") && resource_types == 0 {
            return Err(SelectorError::invalid(
                "Data event selectors must have a resources.type field selector.",
            ));
        }
        if is("Management") && target == SelectorTarget::Trail {
            for fs in &selector.field_selectors {
                match fs.field.as_str() {
                    "eventCategory" | "readOnly" => {}
                    "eventSource" => {
                        let only_not_equals =
                            operators(fs).iter().all(|(op, _)| *op == "NotEquals");
                        let allowed = fs
                            .not_equals
                            .iter()
                            .flatten()
                            .all(|v| v == "kms.amazonaws.com" || v == "rdsdata.amazonaws.com");
                        if !only_not_equals || !allowed {
                            return Err(SelectorError::invalid(
                                "For management events on trails, eventSource supports only NotEquals kms.amazonaws.com or rdsdata.amazonaws.com.",
                            ));
                        }
                    }
                    other => {
                        return Err(SelectorError::invalid(format!(
                            "Field {other} is not supported for management events on trails."
                        )));
                    }
                }
            }
        }
        if is("NetworkActivity") {
            let has_source = selector
                .field_selectors
                .iter()
                .any(|f| f.field == "eventSource" && f.equals.is_some());
            if !has_source {
                return Err(SelectorError::invalid(
                    "Network activity selectors need an eventSource Equals field selector.",
                ));
            }
        }
    }
    if total_values > 500 {
        return Err(SelectorError::invalid(format!(
            "Advanced event selectors can have at most 500 values across all conditions; found {total_values}."
        )));
    }
    Ok(())
}

fn operators(fs: &AdvancedFieldSelector) -> Vec<(&'static str, &Vec<String>)> {
    [
        ("Equals", &fs.equals),
        ("StartsWith", &fs.starts_with),
        ("EndsWith", &fs.ends_with),
        ("NotEquals", &fs.not_equals),
        ("NotStartsWith", &fs.not_starts_with),
        ("NotEndsWith", &fs.not_ends_with),
    ]
    .into_iter()
    .filter_map(|(op, v)| v.as_ref().map(|v| (op, v)))
    .collect()
}

/// Selectors ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledSelectors {
    selectors: Selectors,
}

impl CompiledSelectors {
    /// Prepares selectors for evaluation (they are validated by the API first).
    pub fn compile(selectors: &Selectors) -> Result<Self, SelectorError> {
        Ok(Self {
            selectors: selectors.clone(),
        })
    }

    /// Whether the record is chosen.
    pub fn matches(&self, record: &RecordView<'_>) -> bool {
        match &self.selectors {
            Selectors::Basic(basic) => basic.iter().any(|s| s.matches(record)),
            Selectors::Advanced(advanced) => advanced
                .iter()
                .any(|s| s.field_selectors.iter().all(|fs| field_matches(fs, record))),
        }
    }
}

fn field_values<'r>(record: &'r RecordView<'_>, field: &str) -> Vec<&'r str> {
    let one = |v: Option<&'r str>| v.into_iter().collect::<Vec<_>>();
    let boolean = |v: Option<bool>| match v {
        Some(true) => vec!["true"],
        Some(false) => vec!["false"],
        None => vec![],
    };
    match field {
        "eventCategory" => vec![record.event_category()],
        "eventSource" => one(record.effective_event_source()),
        "eventName" => one(record.effective_event_name()),
        "eventType" => vec![record.event_type()],
        "readOnly" => boolean(record.read_only),
        "resources.type" => record
            .resources()
            .iter()
            .filter_map(|r| r.resource_type.as_deref())
            .collect(),
        "resources.ARN" => record
            .resources()
            .iter()
            .filter_map(|r| r.arn.as_deref().or(r.arn_prefix.as_deref()))
            .collect(),
        "userIdentity.arn" => one(record.user_identity_arn()),
        "errorCode" => one(record.error_code.as_deref()),
        "sessionCredentialFromConsole" => boolean(record.session_credential_from_console),
        "vpcEndpointId" => one(record.vpc_endpoint_id.as_deref()),
        _ => vec![],
    }
}

fn field_matches(fs: &AdvancedFieldSelector, record: &RecordView<'_>) -> bool {
    let values = field_values(record, &fs.field);
    let any = |list: &Option<Vec<String>>, test: &dyn Fn(&str, &str) -> bool| {
        list.as_ref()
            .is_none_or(|list| values.iter().any(|v| list.iter().any(|p| test(v, p))))
    };
    let none = |list: &Option<Vec<String>>, test: &dyn Fn(&str, &str) -> bool| {
        list.as_ref()
            .is_none_or(|list| !values.iter().any(|v| list.iter().any(|p| test(v, p))))
    };
    any(&fs.equals, &|v, p| v == p)
        && any(&fs.starts_with, &|v, p| v.starts_with(p))
        && any(&fs.ends_with, &|v, p| v.ends_with(p))
        && none(&fs.not_equals, &|v, p| v == p)
        && none(&fs.not_starts_with, &|v, p| v.starts_with(p))
        && none(&fs.not_ends_with, &|v, p| v.ends_with(p))
}

#[cfg(test)]
mod tests;
