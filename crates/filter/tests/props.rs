//! Property tests: a generated pattern prints to text that parses back to
//! the same pattern, and nothing panics on arbitrary patterns or events.
#![allow(clippy::unwrap_used)]

use cairn_filter::{
    Expr, FieldComparison, FilterPattern, JsonCondition, JsonTest, LogEvent, Op, Pattern, Segment,
    Selector, Slot, Term, TermMode, TermText, Value,
};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::Ne),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Gt),
        Just(Op::Ge)
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        (any::<i16>(), 0u32..1000).prop_map(|(i, d)| format!("{i}.{d}")),
        (1u32..100, -5i32..5).prop_map(|(m, e)| format!("{m}e{e}")),
        (0u32..100).prop_map(|i| format!("+{i}")),
    ]
    .prop_map(|text| {
        let value = text.parse::<f64>().unwrap();
        Value::Number { text, value }
    })
}

fn regex_body() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,6}",
        Just(r"\d{1,3}".to_owned()),
        Just("^[hc]at$".to_owned()),
        Just("a|b*c+".to_owned()),
        Just(r"[A-Z]\.x?".to_owned()),
    ]
}

fn value_for(op: Op) -> BoxedStrategy<Value> {
    if op == Op::Eq || op == Op::Ne {
        prop_oneof![
            number(),
            ".*".prop_map(|text| Value::String { text, quoted: true }),
            "[a-zA-Z][a-zA-Z0-9._:/*+-]{0,8}".prop_map(|text| Value::String {
                text,
                quoted: false
            }),
            Just(Value::String {
                text: "*".to_owned(),
                quoted: false
            }),
            regex_body().prop_map(Value::Regex),
        ]
        .boxed()
    } else {
        number().boxed()
    }
}

fn comparison() -> impl Strategy<Value = (Op, Value)> {
    op().prop_flat_map(|op| value_for(op).prop_map(move |v| (op, v)))
}

fn selector() -> impl Strategy<Value = Selector> {
    (
        "[A-Za-z0-9_-]{1,6}",
        prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9_-]{1,6}".prop_map(Segment::Key),
                (0usize..50).prop_map(Segment::Index)
            ],
            0..4,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut segments = vec![Segment::Key(first)];
            segments.extend(rest);
            Selector { segments }
        })
}

fn json_condition() -> impl Strategy<Value = JsonCondition> {
    (
        selector(),
        prop_oneof![
            comparison().prop_map(|(op, v)| JsonTest::Compare(op, v)),
            Just(JsonTest::IsNull),
            Just(JsonTest::NotExists),
            Just(JsonTest::IsTrue),
            Just(JsonTest::IsFalse),
        ],
    )
        .prop_map(|(selector, test)| JsonCondition { selector, test })
}

fn expr<L: Clone + std::fmt::Debug + 'static>(
    leaf: impl Strategy<Value = L> + 'static,
) -> impl Strategy<Value = Expr<L>> {
    leaf.prop_map(Expr::Leaf).prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn leftmost_name(e: &Expr<FieldComparison>) -> String {
    match e {
        Expr::Leaf(c) => c.name.clone(),
        Expr::And(items) | Expr::Or(items) => leftmost_name(&items[0]),
    }
}

fn field_comparison() -> impl Strategy<Value = FieldComparison> {
    ("[a-z_][a-z0-9_]{0,5}", comparison()).prop_map(|(name, (op, value))| FieldComparison {
        name,
        op,
        value,
    })
}

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![
        Just(Slot::Ellipsis),
        "([a-z_][a-z0-9_]{0,5})?".prop_map(|name| Slot::Field {
            name,
            condition: None
        }),
        expr(field_comparison()).prop_map(|e| Slot::Field {
            name: leftmost_name(&e),
            condition: Some(e)
        }),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    (
        prop_oneof![
            Just(TermMode::Required),
            Just(TermMode::Excluded),
            Just(TermMode::Optional)
        ],
        prop_oneof![
            "[A-Za-z0-9_é]{1,8}".prop_map(TermText::Word),
            ".*".prop_map(TermText::Phrase),
            regex_body().prop_map(TermText::Regex),
        ],
    )
        .prop_map(|(mode, text)| Term { mode, text })
}

fn regex_count(p: &Pattern) -> usize {
    fn value_regex(v: &Value) -> usize {
        usize::from(matches!(v, Value::Regex(_)))
    }
    fn count<L>(e: &Expr<L>, f: &dyn Fn(&L) -> usize) -> usize {
        match e {
            Expr::Leaf(l) => f(l),
            Expr::And(items) | Expr::Or(items) => items.iter().map(|i| count(i, f)).sum(),
        }
    }
    match p {
        Pattern::Json(e) => count(e, &|c: &JsonCondition| match &c.test {
            JsonTest::Compare(_, v) => value_regex(v),
            _ => 0,
        }),
        Pattern::Delimited(slots) => slots
            .iter()
            .map(|s| match s {
                Slot::Field {
                    condition: Some(e), ..
                } => count(e, &|c: &FieldComparison| value_regex(&c.value)),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just(Pattern::All),
        prop::collection::vec(term(), 1..5).prop_map(Pattern::Terms),
        expr(json_condition()).prop_map(Pattern::Json),
        prop::collection::vec(slot(), 1..6).prop_map(Pattern::Delimited),
    ]
    .prop_filter("the parser's own limits", |p| {
        let lone_empty_phrase = matches!(p, Pattern::Terms(t) if t.len() == 1
            && t[0].mode == TermMode::Required
            && t[0].text == TermText::Phrase(String::new()));
        !lone_empty_phrase && regex_count(p) <= 2 && p.to_string().chars().count() <= 1024
    })
}

fn event() -> impl Strategy<Value = String> {
    let json_leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9 .*%\"-]{0,10}".prop_map(serde_json::Value::from),
    ];
    let json = json_leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[A-Za-z0-9_-]{1,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        any::<String>(),
        "[a-z0-9 \\[\\]\"-]{0,40}",
        json.prop_map(|v| v.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_printed_pattern_parses_back_equal(p in pattern()) {
        let printed = p.to_string();
        let parsed = FilterPattern::parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
        prop_assert_eq!(parsed.ast(), &p, "{}", printed);
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn prop_matching_never_panics(p in pattern(), message in event()) {
        let compiled = FilterPattern::from_ast(p).unwrap();
        let event = LogEvent::new(&message);
        let hit = compiled.matches(&event);
        let values = compiled.extracted_values(&event);
        prop_assert_eq!(values.is_some(), hit);
        let _ = compiled.json_values(&event);
    }

    #[test]
    fn prop_arbitrary_text_parses_or_refuses(text in any::<String>()) {
        if let Ok(p) = FilterPattern::parse(&text) {
            let again = FilterPattern::parse(&p.to_string()).unwrap();
            prop_assert_eq!(again, p);
        }
    }

    #[test]
    fn prop_pattern_like_text_parses_or_refuses(
        text in r#"[{}\[\]()$. a-z0-9=!<>&|"%*,?-]{0,40}"#,
        message in event(),
    ) {
        if let Ok(p) = FilterPattern::parse(&text) {
            let again = FilterPattern::parse(&p.to_string()).unwrap();
            prop_assert_eq!(&again, &p);
            let event = LogEvent::new(&message);
            prop_assert_eq!(again.matches(&event), p.matches(&event));
        }
    }
}
