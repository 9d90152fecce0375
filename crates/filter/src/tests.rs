//! Unit tests: errors and their positions, regex limits, numbers,
//! wildcards, space-delimited alignment, extraction, printing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::matcher::Wildcard;

fn matches(pattern: &str, message: &str) -> bool {
    FilterPattern::parse(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
        .matches(&LogEvent::new(message))
}

fn err(pattern: &str) -> PatternError {
    match FilterPattern::parse(pattern) {
        Ok(p) => panic!("{pattern} parsed as {p:?}"),
        Err(e) => e,
    }
}

fn roundtrip(pattern: &str) -> String {
    let p = FilterPattern::parse(pattern).unwrap();
    let printed = p.to_string();
    assert_eq!(
        FilterPattern::parse(&printed).unwrap(),
        p,
        "{pattern} -> {printed}"
    );
    printed
}

// ---- errors ----

#[test]
fn test_error_invalid_term_uses_aws_wording() {
    let e = err("ERROR foo:bar");
    assert_eq!(e.position, 6);
    assert_eq!(e.to_string(), "Invalid character(s) in term 'foo:bar'");
    assert_eq!(err("-").to_string(), "Invalid character(s) in term '-'");
    assert_eq!(
        err("ERROR ? ").to_string(),
        "Invalid character(s) in term '?'"
    );
    assert_eq!(
        err("a ?x.y").to_string(),
        "Invalid character(s) in term '?x.y'"
    );
}

#[test]
fn test_error_positions_are_characters_not_bytes() {
    // "é" is two bytes, one character.
    let e = err(r#"{ $.é = 1 }"#);
    assert_eq!(e.position, 4, "{e}");
    let e = err(r#""é" {"#);
    assert_eq!(e.position, 4, "{e}");
}

#[test]
fn test_error_unbalanced_and_unterminated() {
    let e = err(r#"{ $.eventType = "UpdateTrail" "#);
    assert!(
        matches!(e.kind, PatternErrorKind::Unterminated { .. }),
        "{e}"
    );
    let e = err(r#"{ $.a = "x }"#);
    assert!(
        matches!(
            e.kind,
            PatternErrorKind::Unterminated {
                what: "quoted string",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.position, 8);
    let e = err("{ ($.a = 1 }");
    assert_eq!(e.position, 11, "{e}");
    let e = err("{ $.a = 1 } x");
    assert_eq!(e.position, 12, "{e}");
    assert!(e.to_string().contains("expected end of pattern"), "{e}");
    let e = err("[a, b");
    assert!(
        matches!(e.kind, PatternErrorKind::Unterminated { .. }),
        "{e}"
    );
    let e = err("%abc");
    assert!(
        matches!(e.kind, PatternErrorKind::Unterminated { .. }),
        "{e}"
    );
}

#[test]
fn test_error_selector_and_operator() {
    let e = err("{ a = 1 }");
    assert_eq!(e.position, 2);
    assert!(e.to_string().contains("expected a selector"), "{e}");
    assert_eq!(err("{ $ = 1 }").position, 3);
    assert_eq!(err("{ $.a[x] = 1 }").position, 6);
    assert_eq!(err("{ $.a ~ 1 }").position, 6);
    assert_eq!(err("{ $.a IS MAYBE }").position, 9);
    assert_eq!(err("{ $.a NOT THERE }").position, 10);
    assert_eq!(err("{ $.a = }").position, 8);
    assert_eq!(err("{ $.a = foo@bar }").position, 11);
    assert_eq!(err("{ $.a = 1 && }").position, 13);
    assert_eq!(err("{ }").position, 2);
    assert_eq!(err("[a b]").position, 3);
    assert_eq!(err("[a = ]").position, 5);
}

#[test]
fn test_error_relational_needs_number() {
    for p in [
        "{ $.eventType > UpdateTrail }",
        r#"{ $.n >= "5" }"#,
        "{ $.n < 1.2.3 }",
        "{ $.n <= %5% }",
        "[a, b > x]",
    ] {
        let e = err(p);
        assert!(
            matches!(e.kind, PatternErrorKind::NotANumber { .. }),
            "{p}: {e}"
        );
    }
    let e = err("{ $.eventType > UpdateTrail }");
    assert_eq!(e.position, 16);
    assert_eq!(
        e.to_string(),
        "Invalid filter pattern at position 16: operator > needs a numeric value, found 'UpdateTrail'"
    );
}

#[test]
fn test_error_length_and_nesting_bounds() {
    let long = "a".repeat(MAX_PATTERN_CHARS + 1);
    assert!(matches!(
        err(&long).kind,
        PatternErrorKind::TooLong { chars: 1025 }
    ));
    assert!(FilterPattern::parse(&"a".repeat(MAX_PATTERN_CHARS)).is_ok());
    // Characters, not bytes: 1024 two-byte letters are fine.
    assert!(FilterPattern::parse(&"é".repeat(MAX_PATTERN_CHARS)).is_ok());

    let deep = |n: usize| format!("{{ {}$.a = 1{} }}", "(".repeat(n), ")".repeat(n));
    assert!(FilterPattern::parse(&deep(MAX_NESTING)).is_ok());
    let e = err(&deep(MAX_NESTING + 1));
    assert!(matches!(e.kind, PatternErrorKind::TooDeep { .. }), "{e}");
}

// ---- regex ----

#[test]
fn test_regex_terms_json_and_delimited() {
    assert!(matches("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST"));
    assert!(matches("%AUTHORIZED%", "[SUCCESS 200] AUTHORIZED REQUEST"));
    assert!(matches(
        r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%",
        "from 10.0.0.1 port 22"
    ));
    assert!(matches("%[Ee]rror|[Ff]ail%", "disk fail"));
    assert!(!matches("%^[hc]at%", "a cat"));
    assert!(matches("ERROR -%time[o]ut%", "ERROR disk full"));
    assert!(!matches("ERROR -%time[o]ut%", "ERROR timeout"));
    assert!(matches(
        r"{ $.ErrorCode = %ERROR\d{3}% }",
        r#"{"ErrorCode": "ERROR404"}"#
    ));
    assert!(!matches(
        r"{ $.ErrorCode != %ERROR\d{3}% }",
        r#"{"ErrorCode": "ERROR404"}"#
    ));
    assert!(!matches(
        r"{ $.ErrorCode = %ERROR\d{3}% }",
        r#"{"ErrorCode": null}"#
    ));
    assert!(matches("{ $.n = %^4% }", r#"{"n": 404}"#));
    assert!(matches(
        r"[ip, user, username, timestamp, request = %GET%, status_code = %4[0-9]{2}%, bytes]",
        r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /x HTTP/1.0" 404 1534"#
    ));
}

#[test]
fn test_regex_refuses_what_aws_refuses() {
    for (p, bad) in [
        ("%something!%", "'!'"),
        ("%(ab)+%", "'('"),
        ("%a b%", "' '"),
        ("%café%", "'é'"),
        ("%a\"b%", "'\"'"),
    ] {
        let e = err(p);
        assert!(
            matches!(e.kind, PatternErrorKind::InvalidRegex { .. }),
            "{p}: {e}"
        );
        assert!(e.to_string().contains(bad), "{p}: {e}");
    }
    assert!(matches!(
        err("%%").kind,
        PatternErrorKind::InvalidRegex { .. }
    ));
    // Back-references and look-around need parentheses or are unknown
    // escapes: refused either way.
    assert!(matches!(
        err(r"%a\1%").kind,
        PatternErrorKind::InvalidRegex { .. }
    ));
    // Unbalanced classes and counted repetitions are refused by the engine.
    assert!(matches!(
        err("%[a%").kind,
        PatternErrorKind::InvalidRegex { .. }
    ));
    assert!(matches!(
        err("%a{2,1}%").kind,
        PatternErrorKind::InvalidRegex { .. }
    ));
    // A repetition too large to compile within the size bound.
    assert!(matches!(
        err("%a{1000}{1000}%").kind,
        PatternErrorKind::InvalidRegex { .. }
    ));
    // Every documented symbol and operator is accepted.
    assert!(FilterPattern::parse(r"%^a:_#=@/;,-[b]{1,2}|c\.*+?$%").is_ok());
}

#[test]
fn test_regex_at_most_two_in_json_and_delimited() {
    assert!(FilterPattern::parse("{ $.a = %x% || $.b = %y% }").is_ok());
    assert_eq!(
        err("{ $.a = %x% || $.b = %y% || $.c = %z% }").kind,
        PatternErrorKind::TooManyRegex
    );
    assert_eq!(
        err("[a = %x%, b = %y%, c = %z%]").kind,
        PatternErrorKind::TooManyRegex
    );
    // AWS states the quota for JSON and space-delimited patterns only.
    assert!(FilterPattern::parse("%a% %b% %c%").is_ok());
}

// ---- numbers ----

#[test]
fn test_numbers_compare_numerically() {
    let e = r#"{"n": 123, "f": 150.5, "s": "200", "neg": -3, "big": 1e3, "word": "abc"}"#;
    assert!(matches("{ $.n = 123.0 }", e));
    assert!(matches("{ $.n = 123 }", e));
    assert!(matches("{ $.n = +123 }", e));
    assert!(matches("{ $.n = 1.23e2 }", e));
    assert!(!matches("{ $.n != 123.0 }", e));
    assert!(matches("{ $.f > 150 }", e));
    assert!(matches("{ $.f <= 150.5 }", e));
    assert!(!matches("{ $.f < 150.5 }", e));
    assert!(matches("{ $.neg < -2 }", e));
    assert!(matches("{ $.big >= 10e2 }", e));
    assert!(matches("{ $.big = 1000 }", e));
    // A numeric string compares as a number to an unquoted number...
    assert!(matches("{ $.s = 200 }", e));
    assert!(matches("{ $.s > 199 }", e));
    // ...and as text to a quoted one.
    assert!(matches(r#"{ $.s = "200" }"#, e));
    assert!(!matches(r#"{ $.n = "123.0" }"#, e));
    assert!(matches(r#"{ $.n = "123" }"#, e));
    // Text that is not a number never satisfies a relational operator.
    assert!(!matches("{ $.word > 1 }", e));
    assert!(!matches("{ $.word < 1 }", e));
    assert!(matches("{ $.word != 1 }", e));
}

#[test]
fn test_comparison_on_missing_null_object_array_boolean_never_matches() {
    let e = r#"{"nul": null, "obj": {"a": 1}, "arr": [1, 2], "t": true}"#;
    for field in ["missing", "nul", "obj", "arr", "t"] {
        for cmp in [
            "= 1",
            "!= 1",
            r#"= "x""#,
            r#"!= "x""#,
            "> 0",
            "= *",
            "!= %x%",
        ] {
            let p = format!("{{ $.{field} {cmp} }}");
            assert!(!matches(&p, e), "{p}");
        }
    }
    assert!(matches("{ $.nul IS NULL }", e));
    assert!(!matches("{ $.missing IS NULL }", e));
    assert!(matches("{ $.missing NOT EXISTS }", e));
    assert!(!matches("{ $.nul NOT EXISTS }", e));
    assert!(matches("{ $.obj.b NOT EXISTS }", e));
    assert!(matches("{ $.arr[5] NOT EXISTS }", e));
    assert!(matches("{ $.t.x NOT EXISTS }", e));
    assert!(matches("{ $.t IS TRUE }", e));
    assert!(!matches("{ $.t IS FALSE }", e));
    assert!(!matches("{ $.missing IS FALSE }", e));
    assert!(matches("{ $.obj.a = 1 && $.arr[1] = 2 }", e));
    // Keywords in any case.
    assert!(matches("{ $.nul is null }", e));
}

#[test]
fn test_json_pattern_needs_json_event() {
    assert!(!matches("{ $.a = * }", "not json"));
    assert!(!matches("{ $.a = * }", r#"{"a": "#));
    assert!(!matches("{ $.a NOT EXISTS }", "plain text"));
    assert!(matches("{ $.a NOT EXISTS }", "{}"));
    assert!(matches("{ $.a = * }", r#"  {"a": 7}"#));
}

// ---- wildcards ----

#[test]
fn test_wildcard_shapes() {
    let cases = [
        ("*", "", true),
        ("*", "anything", true),
        ("abc", "abc", true),
        ("abc", "abcd", false),
        ("abc*", "abcd", true),
        ("abc*", "xabc", false),
        ("*abc", "xabc", true),
        ("*abc", "abcx", false),
        ("*abc*", "xxabcxx", true),
        ("*abc*", "ab", false),
        ("a*c", "abc", true),
        ("a*c", "ac", true),
        ("a*c", "a", false),
        ("a*b*c", "a_b_c", true),
        ("a*b*c", "acb", false),
        ("*a*b*", "xxaxxbxx", true),
        ("*a*b*", "xxbxxaxx", false),
        ("ab*ba", "aba", false),
        ("**", "", true),
    ];
    for (pattern, text, want) in cases {
        assert_eq!(
            Wildcard::new(pattern).matches(text),
            want,
            "{pattern} on {text}"
        );
    }
}

#[test]
fn test_wildcards_in_json_values() {
    let e = r#"{"ip": "111.111.111.111", "code": "Client.UnauthorizedOperation", "n": 404}"#;
    assert!(matches("{ $.ip = 111.* }", e));
    assert!(matches("{ $.ip != 123.123.* }", e));
    assert!(matches(r#"{ $.code = "*UnauthorizedOperation" }"#, e));
    assert!(matches("{ $.code = *Unauthorized* }", e));
    assert!(matches("{ $.code = Client*Operation }", e));
    assert!(matches("{ $.n = 4* }", e));
    assert!(matches("{ $.n = * }", e));
    assert!(!matches("{ $.n = 5* }", e));
}

// ---- terms ----

#[test]
fn test_terms() {
    assert!(matches("ERROR", "Exiting with ERRORCODE: -1"));
    assert!(matches(
        r#""ERROR" -"Exiting""#,
        "[ERROR] A fatal exception"
    ));
    assert!(!matches(
        r#""ERROR" -"Exiting""#,
        "Exiting with ERRORCODE: -1"
    ));
    assert!(matches(
        r#""Failed to process""#,
        "[WARN] Failed to process the request"
    ));
    assert!(!matches(
        r#""Failed to process""#,
        "[WARN] Failed  to process"
    ));
    assert!(matches(r#""say \"hi\"""#, r#"they say "hi" here"#));
    assert!(matches("?ERROR ?WARN", "WARN message"));
    assert!(!matches("?ERROR ?WARN", "INFO message"));
    assert!(!matches("ERROR ?WARN ?INFO", "ERROR only"));
    assert!(matches("ERROR ?WARN ?INFO", "ERROR and INFO"));
    assert!(matches("", "anything"));
    assert!(matches("   ", "anything"));
    assert!(matches(r#""""#, "anything"));
    assert!(matches(r#""""#, ""));
    assert!(matches("café", "un café noir"));
    // The sign may stand apart from its term, as in AWS's guide.
    assert!(!matches(
        r#""ERROR" - "Exiting""#,
        "Exiting with ERRORCODE: -1"
    ));
    assert_eq!(roundtrip(r#""ERROR" - "Exiting""#), r#""ERROR" -"Exiting""#);
}

// ---- space-delimited ----

const APACHE: &str =
    r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534"#;

#[test]
fn test_delimited_ellipsis_positions() {
    assert!(matches("[ip, user, ...]", APACHE));
    assert!(matches("[..., status_code, bytes]", APACHE));
    assert!(matches("[ip, ..., bytes > 1000]", APACHE));
    assert!(matches("[..., status = 404, ...]", APACHE));
    assert!(matches(
        "[..., user = frank, ..., status = 4*, ...]",
        APACHE
    ));
    assert!(!matches(
        "[..., status = 4*, ..., user = frank, ...]",
        APACHE
    ));
    assert!(matches("[...]", APACHE));
    assert!(matches("[..., ...]", APACHE));
    assert!(matches("[a, b, c, d, e, f, g, ...]", APACHE));
    assert!(!matches("[a, b, c, d, e, f, g, h, ...]", APACHE));
    assert!(!matches("[a, b, c, d, e, f]", APACHE));
    assert!(matches("[a, , , , , , ]", APACHE));
}

#[test]
fn test_delimited_or_and_within_a_field() {
    assert!(matches("[w1=ERROR, w2]", "ERROR message"));
    assert!(!matches("[w1=ERROR, w2]", "WARN message"));
    assert!(matches("[w1=ERROR || w1=WARN, w2]", "WARN message"));
    assert!(!matches("[w1=ERROR || w1=WARN, w2]", "ERROR WARN message"));
    assert!(matches("[..., s = 4* && s != 403, b]", APACHE));
    assert!(!matches("[..., s = 4* && s != 404, b]", APACHE));
    assert!(matches(r#"[ip, user != "-" || ip = 127.*, ...]"#, APACHE));
    assert!(!matches(r#"[ip, user != "-", ...]"#, APACHE));
    assert!(matches(
        "[ip, user, name, time, req = *apache_pb*, code, bytes]",
        APACHE
    ));
    // A condition naming another field reads that field.
    assert!(matches("[..., code, bytes = 1534 && code = 404]", APACHE));
    assert!(!matches("[..., code, bytes = 1534 && code = 200]", APACHE));
}

// ---- extraction ----

#[test]
fn test_extracted_values_space_delimited() {
    let p = FilterPattern::parse("[..., request = *.gif*, status_code = 4*,]").unwrap();
    let event = LogEvent::new(APACHE);
    let got = p.extracted_values(&event).unwrap();
    let want: BTreeMap<String, String> = [
        ("$1", "127.0.0.1"),
        ("$2", "-"),
        ("$3", "frank"),
        ("$4", "10/Oct/2000:13:25:15 -0700"),
        ("$request", "GET /apache_pb.gif HTTP/1.0"),
        ("$status_code", "404"),
        ("$7", "1534"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(p.extracted_values(&LogEvent::new("a b c")), None);
}

#[test]
fn test_extracted_values_json_and_terms_are_empty() {
    let p = FilterPattern::parse("{ $.latency = * }").unwrap();
    let e = LogEvent::new(r#"{"latency": 42, "other": "x"}"#);
    assert_eq!(p.extracted_values(&e), Some(BTreeMap::new()));
    let json = p.json_values(&e).unwrap();
    assert_eq!(json.get("$.latency").map(String::as_str), Some("42"));
    assert_eq!(json.len(), 1);
    let p = FilterPattern::parse("ERROR").unwrap();
    assert_eq!(
        p.extracted_values(&LogEvent::new("ERROR x")),
        Some(BTreeMap::new())
    );
    assert_eq!(p.extracted_values(&LogEvent::new("x")), None);
}

#[test]
fn test_metric_values() {
    let json = FilterPattern::parse("{ $.latency = * }").unwrap();
    let mv = MetricValue::parse("$.latency", &json).unwrap();
    assert_eq!(
        mv.value(&json, &LogEvent::new(r#"{"latency": 42.5}"#)),
        Some(42.5)
    );
    assert_eq!(
        mv.value(&json, &LogEvent::new(r#"{"latency": "17"}"#)),
        Some(17.0)
    );
    assert_eq!(
        mv.value(&json, &LogEvent::new(r#"{"latency": "slow"}"#)),
        None
    );
    assert_eq!(mv.value(&json, &LogEvent::new(r#"{"other": 1}"#)), None);
    let one = MetricValue::parse("1", &json).unwrap();
    assert_eq!(one, MetricValue::Literal(1.0));
    assert_eq!(
        one.value(&json, &LogEvent::new(r#"{"latency": 1}"#)),
        Some(1.0)
    );
    assert_eq!(one.value(&json, &LogEvent::new("{}")), None);
    // Only fields the pattern references.
    let e = MetricValue::parse("$.other", &json).unwrap_err();
    assert!(
        matches!(e.kind, PatternErrorKind::InvalidMetricValue { .. }),
        "{e}"
    );
    assert!(MetricValue::parse("$bytes", &json).is_err());
    assert!(MetricValue::parse("lots", &json).is_err());

    let delimited =
        FilterPattern::parse("[ip, user, username, timestamp, request, status_code = 4*, bytes]")
            .unwrap();
    let bytes = MetricValue::parse("$bytes", &delimited).unwrap();
    assert_eq!(
        bytes.value(&delimited, &LogEvent::new(APACHE)),
        Some(1534.0)
    );
    let seventh = MetricValue::parse("$7", &delimited).unwrap();
    assert_eq!(
        seventh.value(&delimited, &LogEvent::new(APACHE)),
        Some(1534.0)
    );
    assert!(MetricValue::parse("$size", &delimited).is_err());
    assert!(MetricValue::parse("$.bytes", &delimited).is_err());

    // Dimensions read text.
    let field = delimited.field_ref("$request").unwrap();
    let event = LogEvent::new(APACHE);
    let value = delimited.extract(&event, &field).unwrap();
    assert_eq!(value.to_text(), "GET /apache_pb.gif HTTP/1.0");
    assert_eq!(value.as_f64(), None);
}

#[test]
fn test_field_ref_parse() {
    assert_eq!(FieldRef::parse("$3"), Some(FieldRef::Position(3)));
    assert_eq!(FieldRef::parse("$0"), None);
    assert_eq!(
        FieldRef::parse("$bytes"),
        Some(FieldRef::Named("bytes".into()))
    );
    assert_eq!(
        FieldRef::parse("$.a[1].b").map(|f| f.to_string()),
        Some("$.a[1].b".to_owned())
    );
    assert_eq!(FieldRef::parse("$.a b"), None);
    assert_eq!(FieldRef::parse("bytes"), None);
    assert_eq!(FieldRef::parse("$"), None);
}

// ---- printing ----

#[test]
fn test_printing_is_canonical_and_round_trips() {
    assert_eq!(roundtrip("  ERROR   -x ?y  "), "ERROR -x ?y");
    assert_eq!(roundtrip(r#""a \"b\" \\ c""#), r#""a \"b\" \\ c""#);
    assert_eq!(
        roundtrip("{$.a=1&&$.b=x||$.c IS NULL}"),
        "{ ($.a = 1 && $.b = x) || $.c IS NULL }"
    );
    assert_eq!(roundtrip("{ (($.a = 1)) }"), "{ $.a = 1 }");
    assert_eq!(
        roundtrip("{ ($.a = 1 || $.b = 2) && $.c NOT EXISTS }"),
        "{ ($.a = 1 || $.b = 2) && $.c NOT EXISTS }"
    );
    assert_eq!(
        roundtrip("{ ($.a = 1 && $.b = 2) && $.c = 3 }"),
        "{ ($.a = 1 && $.b = 2) && $.c = 3 }"
    );
    assert_eq!(
        roundtrip("{ $.a[0][12].b >= 10e-3 }"),
        "{ $.a[0][12].b >= 10e-3 }"
    );
    assert_eq!(
        roundtrip("[a,b=4*&&b!=403,...,c = %x%,]"),
        "[a, b = 4* && b != 403, ..., c = %x%, ]"
    );
    assert_eq!(roundtrip(""), "");
    assert_eq!(roundtrip(r#""""#), "");
    assert_eq!(roundtrip(r#"{ $.a = "\d" }"#), r#"{ $.a = "\\d" }"#);
}

#[test]
fn test_merged_equalities_mean_the_same() {
    let p = "{ $.a = x || $.b = z || $.a = y || $.a = 5* || ($.a = \"404\" && $.c NOT EXISTS) || $.a = \"404\" }";
    let cases = [
        (r#"{"a": "x"}"#, true),
        (r#"{"a": "y"}"#, true),
        (r#"{"a": "w"}"#, false),
        (r#"{"b": "z"}"#, true),
        (r#"{"a": "55"}"#, true),
        (r#"{"a": 404, "c": 1}"#, true),
        (r#"{"a": 403}"#, false),
        (r#"{"a": ["x"]}"#, false),
        (r#"{"a": null}"#, false),
    ];
    for (event, want) in cases {
        assert_eq!(matches(p, event), want, "{event}");
    }
    // The printed form is unchanged by the merge.
    assert_eq!(roundtrip(p), p);
}
