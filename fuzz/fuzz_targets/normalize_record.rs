//! Record normalisation on arbitrary text: never panics, and whatever it
//! accepts is JSON every reader can read, with the key fields it promises.
#![no_main]

use cairn_model::{IngestDefaults, record::normalize_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let defaults = IngestDefaults {
        account_id: "123456789012",
        region: "us-east-1",
    };
    if let Ok(record) = normalize_record(text, &defaults) {
        let value: serde_json::Value =
            serde_json::from_str(&record.json).expect("accepted records are JSON");
        assert!(value.is_object());
        assert!(value.get("eventID").is_some());
        assert!(cairn_model::AccountId::new(&record.recipient_account_id).is_ok());
        assert!(cairn_model::Region::new(&record.aws_region).is_ok());
    }
});
