//! Record normalisation on arbitrary text: never panics, and whatever it
//! accepts is JSON every reader can read, with the key fields it promises,
//! and a stored view that decodes to exactly what a parse of that JSON gives.
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
        assert!(cairn_model::AccountId::new(record.recipient_account_id()).is_ok());
        assert!(cairn_model::Region::new(record.aws_region()).is_ok());
        let mut view = Vec::new();
        record.encode_view(&mut view);
        let stored = cairn_model::view_codec::decode_view(&view, &record.json)
            .expect("a stored view decodes");
        let parsed = cairn_model::RecordView::parse(&record.json).expect("accepted records parse");
        assert_eq!(format!("{stored:?}"), format!("{parsed:?}"));
    }
});
