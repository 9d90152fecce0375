//! Basic event selectors.

use serde::{Deserialize, Serialize};

use cairn_model::RecordView;

use crate::error::SelectorError;

/// `ReadWriteType`. Kept as text so an unknown value is a validation error
/// with CloudTrail's exception rather than a parse failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWriteType {
    /// Read-only events.
    ReadOnly,
    /// Write events.
    WriteOnly,
    /// Both.
    All,
}

impl ReadWriteType {
    /// Parses the wire value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ReadOnly" => Some(Self::ReadOnly),
            "WriteOnly" => Some(Self::WriteOnly),
            "All" => Some(Self::All),
            _ => None,
        }
    }
}

/// A data resource of a basic selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataResource {
    /// The resource type.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// ARN prefixes (or exact Lambda ARNs).
    #[serde(rename = "Values", default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// A basic event selector, with botocore's member names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSelector {
    /// `ReadOnly`, `WriteOnly` or `All`.
    #[serde(
        rename = "ReadWriteType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub read_write_type: Option<String>,
    /// Whether management events match (default true).
    #[serde(
        rename = "IncludeManagementEvents",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub include_management_events: Option<bool>,
    /// Data resources.
    #[serde(
        rename = "DataResources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_resources: Option<Vec<DataResource>>,
    /// Management event sources to leave out.
    #[serde(
        rename = "ExcludeManagementEventSources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_management_event_sources: Option<Vec<String>>,
}

const DATA_TYPES: [&str; 3] = [
    "AWS::S3::Object",
    "AWS::Lambda::Function",
    "AWS::DynamoDB::Table",
];
const EXCLUDABLE: [&str; 2] = ["kms.amazonaws.com", "rdsdata.amazonaws.com"];

impl EventSelector {
    /// All management events, no data events: a new trail's selector.
    pub fn default_all_management() -> Self {
        Self {
            read_write_type: Some("All".to_owned()),
            include_management_events: Some(true),
            data_resources: Some(Vec::new()),
            exclude_management_event_sources: Some(Vec::new()),
        }
    }

    /// The selector with CloudTrail's defaults filled in, as GetEventSelectors shows it.
    pub fn normalized(&self) -> Self {
        Self {
            read_write_type: Some(
                self.read_write_type
                    .clone()
                    .unwrap_or_else(|| "All".to_owned()),
            ),
            include_management_events: Some(self.include_management_events.unwrap_or(true)),
            data_resources: Some(self.data_resources.clone().unwrap_or_default()),
            exclude_management_event_sources: Some(
                self.exclude_management_event_sources
                    .clone()
                    .unwrap_or_default(),
            ),
        }
    }

    fn read_write(&self) -> ReadWriteType {
        self.read_write_type
            .as_deref()
            .and_then(ReadWriteType::parse)
            .unwrap_or(ReadWriteType::All)
    }

    /// Whether a record matches this selector.
    pub fn matches(&self, record: &RecordView<'_>) -> bool {
        let rw_ok = matches!(
            (self.read_write(), record.read_only),
            (ReadWriteType::All, _)
                | (ReadWriteType::ReadOnly, Some(true))
                | (ReadWriteType::WriteOnly, Some(false))
        );
        if !rw_ok {
            return false;
        }
        match record.event_category() {
            "Management" => {
                self.include_management_events.unwrap_or(true)
                    && !record.effective_event_source().is_some_and(|s| {
                        self.exclude_management_event_sources
                            .iter()
                            .flatten()
                            .any(|x| x == s)
                    })
            }
            "Data" => self.data_resources.iter().flatten().any(|dr| {
                let Some(kind) = dr.r#type.as_deref() else {
                    return false;
                };
                record
                    .resources()
                    .iter()
                    .filter(|r| r.resource_type.as_deref() == Some(kind))
                    .filter_map(|r| r.arn.as_deref().or(r.arn_prefix.as_deref()))
                    .any(|arn| {
                        dr.values
                            .iter()
                            .flatten()
                            .any(|v| value_matches(kind, v, arn))
                    })
            }),
            _ => false,
        }
    }
}

/// `arn:<partition>:<service>` alone selects every resource of the type; a
/// Lambda function ARN matches exactly; other values are ARN prefixes.
fn value_matches(kind: &str, value: &str, arn: &str) -> bool {
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() == 3
        || (parts.len() >= 3 && parts[3..].iter().all(|p| p.is_empty()) && !value.contains('/'))
    {
        return arn.starts_with(&format!("{}:{}:{}:", parts[0], parts[1], parts[2]));
    }
    if kind == "AWS::Lambda::Function" {
        return arn == value;
    }
    arn.starts_with(value)
}

pub(crate) fn validate(selectors: &[EventSelector]) -> Result<(), SelectorError> {
    if selectors.is_empty() || selectors.len() > 5 {
        return Err(SelectorError::invalid(format!(
            "Specify a valid number of event selectors (1 to 5). You specified {}.",
            selectors.len()
        )));
    }
    let mut total = 0usize;
    for s in selectors {
        if let Some(rw) = &s.read_write_type
            && ReadWriteType::parse(rw).is_none()
        {
            return Err(SelectorError::invalid(format!(
                "Value {rw} for ReadWriteType is not valid. Valid values are ReadOnly, WriteOnly, All."
            )));
        }
        for source in s.exclude_management_event_sources.iter().flatten() {
            if !EXCLUDABLE.contains(&source.as_str()) {
                return Err(SelectorError::invalid(format!(
                    "Value {source} for ExcludeManagementEventSources is not valid. Valid values are kms.amazonaws.com, rdsdata.amazonaws.com."
                )));
            }
        }
        if let Some(resources) = &s.data_resources {
            if resources.len() > 250 {
                return Err(SelectorError::invalid(
                    "An event selector can have at most 250 data resources.",
                ));
            }
            for dr in resources {
                let kind = dr.r#type.as_deref().unwrap_or("");
                if !DATA_TYPES.contains(&kind) {
                    return Err(SelectorError::invalid(format!(
                        "Value {kind} for DataResources.Type is not valid. Basic event selectors support {}; use advanced event selectors for other resource types.",
                        DATA_TYPES.join(", ")
                    )));
                }
                let values = dr.values.as_deref().unwrap_or(&[]);
                if values.is_empty() || values.len() > 250 {
                    return Err(SelectorError::invalid(
                        "Each data resource needs 1 to 250 values.",
                    ));
                }
                for v in values {
                    if !v.starts_with("arn:") {
                        return Err(SelectorError::invalid(format!(
                            "Value {v} for DataResources.Values is not a valid ARN."
                        )));
                    }
                }
                total += values.len();
            }
        }
    }
    if total > 250 {
        return Err(SelectorError::invalid(format!(
            "A trail can have at most 250 data resources across its event selectors; found {total}."
        )));
    }
    Ok(())
}
