//! The stored form of a trail's selectors (`TrailConfig::selectors`): exactly
//! what GetEventSelectors answers besides `TrailARN`, `{"EventSelectors": [...]}`
//! or `{"AdvancedEventSelectors": [...]}`.

use serde_json::Value;

use crate::{SelectorError, Selectors};

/// The stored form of `selectors`.
pub fn selectors_to_stored(selectors: &Selectors) -> Value {
    match selectors {
        Selectors::Basic(basic) => serde_json::json!({ "EventSelectors": basic }),
        Selectors::Advanced(advanced) => serde_json::json!({ "AdvancedEventSelectors": advanced }),
    }
}

/// Reads the stored form back.
pub fn selectors_from_stored(value: &Value) -> Result<Selectors, SelectorError> {
    let invalid = |e: serde_json::Error| SelectorError::invalid(e.to_string());
    if let Some(basic) = value.get("EventSelectors") {
        return Selectors::deserialize_basic(basic).map_err(invalid);
    }
    if let Some(advanced) = value.get("AdvancedEventSelectors") {
        return Selectors::deserialize_advanced(advanced).map_err(invalid);
    }
    Err(SelectorError::invalid(
        "neither EventSelectors nor AdvancedEventSelectors",
    ))
}

impl Selectors {
    fn deserialize_basic(value: &Value) -> serde_json::Result<Self> {
        serde::Deserialize::deserialize(value).map(Selectors::Basic)
    }

    fn deserialize_advanced(value: &Value) -> serde_json::Result<Self> {
        serde::Deserialize::deserialize(value).map(Selectors::Advanced)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn test_stored_round_trip() {
        let basic = Selectors::default_for_new_trail();
        let stored = selectors_to_stored(&basic);
        assert!(stored.get("EventSelectors").is_some());
        assert_eq!(selectors_from_stored(&stored).unwrap(), basic);
        let advanced: Value = serde_json::json!({"AdvancedEventSelectors": [
            {"Name": "s3", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}
        ]});
        let parsed = selectors_from_stored(&advanced).unwrap();
        assert!(matches!(parsed, Selectors::Advanced(_)));
        assert_eq!(selectors_to_stored(&parsed), advanced);
        assert!(selectors_from_stored(&serde_json::json!({})).is_err());
    }
}
