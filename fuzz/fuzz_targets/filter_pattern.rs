//! Filter patterns on arbitrary text: the input is a pattern, a newline,
//! and an event. Parsing refuses or succeeds, never panics; a parsed
//! pattern prints to text that parses back equal and means the same;
//! matching and extraction never panic.
#![no_main]

use cairn_filter::{FilterPattern, LogEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, message) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(parsed) = FilterPattern::parse(pattern) else {
        return;
    };
    let printed = parsed.to_string();
    let again = match FilterPattern::parse(&printed) {
        Ok(again) => again,
        Err(e) => panic!("{pattern:?} printed as {printed:?}, which is refused: {e}"),
    };
    assert_eq!(again, parsed, "{pattern:?} printed as {printed:?}");
    assert_eq!(again.to_string(), printed, "printing is not stable");

    let event = LogEvent::new(message);
    let hit = parsed.matches(&event);
    assert_eq!(again.matches(&event), hit, "{pattern:?} and {printed:?} disagree");
    assert_eq!(parsed.extracted_values(&event).is_some(), hit);
    let _ = parsed.json_values(&event);
    // Metric values and dimensions: a position, and the first field or
    // selector the pattern names, when there is one.
    let mut refs = vec!["$1".to_owned()];
    match parsed.ast() {
        cairn_filter::Pattern::Delimited(slots) => {
            if let Some(cairn_filter::Slot::Field { name, .. }) = slots.first() {
                refs.push(format!("${name}"));
            }
        }
        cairn_filter::Pattern::Json(_) => {
            if let Some(at) = printed.find("$.") {
                let selector: String = printed[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                refs.push(selector);
            }
        }
        _ => {}
    }
    for text in &refs {
        if let Ok(field) = parsed.field_ref(text) {
            let value = parsed.extract(&event, &field);
            assert!(value.is_none() || hit, "a value from an event that does not match");
            if let Some(v) = value {
                let _ = (v.as_f64(), v.to_text());
            }
        }
        if let Ok(metric) = cairn_filter::MetricValue::parse(text, &parsed) {
            let _ = metric.value(&parsed, &event);
        }
    }
});
