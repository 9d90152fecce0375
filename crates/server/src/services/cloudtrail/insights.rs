//! Insight selectors: validation, and the management events each insight type needs.

use cairn_meta::TrailConfig;
use cairn_select::Selectors;

use super::InsightSelector;
use crate::error::AwsError;

/// The insight types CloudTrail knows.
const INSIGHT_TYPES: [&str; 2] = ["ApiCallRateInsight", "ApiErrorRateInsight"];

/// The event categories an insight selector may name.
const INSIGHT_EVENT_CATEGORIES: [&str; 2] = ["Management", "Data"];

fn invalid_insight_selectors(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidInsightSelectorsException", message)
}

/// Validates insight selectors: each names a known insight type, once.
pub fn validate_insight_selectors(selectors: &[InsightSelector]) -> Result<(), AwsError> {
    let mut seen = Vec::new();
    for selector in selectors {
        let Some(kind) = selector.insight_type.as_deref() else {
            return Err(invalid_insight_selectors(
                "InsightType is required in each InsightSelector.",
            ));
        };
        if !INSIGHT_TYPES.contains(&kind) {
            return Err(invalid_insight_selectors(format!(
                "The InsightType {kind} is not valid. Valid values are ApiCallRateInsight and ApiErrorRateInsight."
            )));
        }
        if seen.contains(&kind) {
            return Err(invalid_insight_selectors(format!(
                "The InsightType {kind} is specified more than once."
            )));
        }
        seen.push(kind);
        for category in selector.event_categories.iter().flatten() {
            if !INSIGHT_EVENT_CATEGORIES.contains(&category.as_str()) {
                return Err(invalid_insight_selectors(format!(
                    "The EventCategory {category} is not valid. Valid values are Management and Data."
                )));
            }
        }
    }
    Ok(())
}

/// Which management events a trail's selectors log: (read, write).
fn management_events_logged(config: &TrailConfig) -> (bool, bool) {
    let Ok(selectors) = cairn_select::selectors_from_stored(&config.selectors) else {
        return (false, false);
    };
    let mut logged = (false, false);
    match selectors {
        Selectors::Basic(basic) => {
            for s in basic
                .iter()
                .filter(|s| s.include_management_events != Some(false))
            {
                match s.read_write_type.as_deref() {
                    Some("ReadOnly") => logged.0 = true,
                    Some("WriteOnly") => logged.1 = true,
                    _ => logged = (true, true),
                }
            }
        }
        Selectors::Advanced(advanced) => {
            for s in &advanced {
                let equals = |field: &str| {
                    s.field_selectors
                        .iter()
                        .find(|f| f.field == field)
                        .and_then(|f| f.equals.clone())
                };
                if !equals("eventCategory").is_some_and(|v| v.iter().any(|c| c == "Management")) {
                    continue;
                }
                match equals("readOnly").as_deref() {
                    Some([only]) if only == "true" => logged.0 = true,
                    Some([only]) if only == "false" => logged.1 = true,
                    _ => logged = (true, true),
                }
            }
        }
    }
    logged
}

/// Insights on management events need the trail to log them: write events for
/// `ApiCallRateInsight`, read or write events for `ApiErrorRateInsight`.
pub(super) fn check_insights_have_events(
    config: &TrailConfig,
    selectors: &[InsightSelector],
) -> Result<(), AwsError> {
    let (read, write) = management_events_logged(config);
    for selector in selectors {
        let on_management = selector
            .event_categories
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == "Management"));
        if !on_management {
            continue;
        }
        let (kind, ok, needed) = match selector.insight_type.as_deref() {
            Some("ApiCallRateInsight") => ("ApiCallRateInsight", write, "write"),
            _ => ("ApiErrorRateInsight", read || write, "read or write"),
        };
        if !ok {
            return Err(invalid_insight_selectors(format!(
                "To log {kind} Insights events on management events, trail {} must log {needed} management events.",
                config.name
            )));
        }
    }
    Ok(())
}
