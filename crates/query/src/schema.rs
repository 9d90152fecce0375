//! The Arrow schema of CloudTrail records, as Athena's CloudTrail table
//! declares it, and the conversion of records into it.
//!
//! Names are lower case, as Athena (and the Hive metastore) keep them: SQL
//! identifiers are folded to lower case before they are resolved, so
//! `userIdentity.userName` finds `useridentity.username`. JSON members are
//! matched to fields case-insensitively, as Hive's JSON SerDe does, so a
//! record's `resources[].ARN` is what `resources[1].arn` reads.
//!
//! Cairn converts records itself rather than letting an NDJSON reader infer a
//! schema: the same member (`requestParameters`) is an object in one record
//! and a string or null in another. The columns Athena's table declares as
//! `STRING` that hold JSON (`requestparameters`, `responseelements`,
//! `additionaleventdata`, `serviceeventdetails`) keep the member's JSON text;
//! any other value that does not fit its field becomes its JSON text (a
//! string field) or null (a struct or list field), never an error.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::json::reader::ReaderBuilder;
use serde_json::{Map, Value};

use crate::Error;

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn strukt(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// The `useridentity` struct.
fn user_identity() -> Field {
    strukt(
        "useridentity",
        vec![
            utf8("type"),
            utf8("principalid"),
            utf8("arn"),
            utf8("accountid"),
            utf8("invokedby"),
            utf8("accesskeyid"),
            utf8("username"),
            strukt("onbehalfof", vec![utf8("userid"), utf8("identitystorearn")]),
            strukt(
                "sessioncontext",
                vec![
                    strukt(
                        "attributes",
                        vec![utf8("mfaauthenticated"), utf8("creationdate")],
                    ),
                    strukt(
                        "sessionissuer",
                        vec![
                            utf8("type"),
                            utf8("principalid"),
                            utf8("arn"),
                            utf8("accountid"),
                            utf8("username"),
                        ],
                    ),
                    utf8("ec2roledelivery"),
                    utf8("sourceidentity"),
                ],
            ),
            utf8("credentialid"),
        ],
    )
}

/// The `resources` list of structs.
fn resources() -> Field {
    let item = Field::new(
        "item",
        DataType::Struct(Fields::from(vec![
            utf8("arn"),
            utf8("accountid"),
            utf8("type"),
        ])),
        true,
    );
    Field::new("resources", DataType::List(Arc::new(item)), true)
}

/// The record columns of Athena's CloudTrail table (without partitions), in
/// the order AWS documents them.
pub fn record_fields() -> Vec<Field> {
    vec![
        utf8("eventversion"),
        user_identity(),
        utf8("eventtime"),
        utf8("eventsource"),
        utf8("eventname"),
        utf8("awsregion"),
        utf8("sourceipaddress"),
        utf8("useragent"),
        utf8("errorcode"),
        utf8("errormessage"),
        utf8("requestparameters"),
        utf8("responseelements"),
        utf8("additionaleventdata"),
        utf8("requestid"),
        utf8("eventid"),
        utf8("readonly"),
        resources(),
        utf8("eventtype"),
        utf8("apiversion"),
        utf8("recipientaccountid"),
        utf8("serviceeventdetails"),
        utf8("sharedeventid"),
        utf8("vpcendpointid"),
        utf8("vpcendpointaccountid"),
        utf8("eventcategory"),
        strukt(
            "tlsdetails",
            vec![
                utf8("tlsversion"),
                utf8("ciphersuite"),
                utf8("clientprovidedhostheader"),
            ],
        ),
        utf8("sessioncredentialfromconsole"),
    ]
}

/// The partition columns of a table over a trail's `CloudTrail/` prefix.
pub const PARTITION_COLUMNS: [&str; 4] = ["region", "year", "month", "day"];

/// The schema of converted records: the record columns, then the partitions.
pub fn cloudtrail_schema() -> SchemaRef {
    let mut fields = record_fields();
    fields.extend(PARTITION_COLUMNS.iter().map(|c| utf8(c)));
    Arc::new(Schema::new(fields))
}

/// `schema` as queries read it: the strings of columns with few distinct
/// values (in structs and lists too) as string views, the others plain.
///
/// The files keep plain strings, which every Parquet reader knows. A view
/// reads a dictionary-encoded column (`eventName`, `userIdentity.arn`,
/// `recipientAccountId`) without copying each row's bytes out of the
/// dictionary, and compares and hashes strings of up to 12 bytes as
/// integers. A column nearly unique per event (`eventTime`, `eventID`, the
/// JSON text of `requestParameters`) is stored plain, not as a dictionary
/// (see [`nearly_unique_columns`]): read as views its bytes would be copied
/// all the same and then described once more, so it stays a plain string.
pub fn read_schema(schema: &Schema) -> SchemaRef {
    strings_as(schema, &DataType::Utf8, &DataType::Utf8View, |name| {
        !EVENT_UNIQUE_COLUMNS.contains(&name) && !JSON_TEXT_COLUMNS.contains(&name)
    })
}

/// Top-level columns besides [`JSON_TEXT_COLUMNS`] that [`read_schema`]
/// keeps plain: nearly one value per event.
const EVENT_UNIQUE_COLUMNS: [&str; 4] = ["eventtime", "eventid", "requestid", "sharedeventid"];

/// The top-level columns whose values nearly all differ from one event to
/// the next: [`EVENT_UNIQUE_COLUMNS`], the JSON text, and `sourceIPAddress`
/// (an address per client, and clients are many). Stored without a
/// dictionary; see `logs::copy_writer_properties`.
pub(crate) fn nearly_unique_columns() -> impl Iterator<Item = &'static str> {
    EVENT_UNIQUE_COLUMNS
        .into_iter()
        .chain(JSON_TEXT_COLUMNS)
        .chain(["sourceipaddress"])
}

/// The columns whose values repeat within a row group (a service, an
/// action, a principal, a region, an error code), as column paths: stored
/// without a compression codec; see `logs::writer_properties`.
///
/// Why: their dictionary already makes them small, and their data pages are
/// bit-packed dictionary indices that zstd barely shrinks (1.0–1.3x here; the
/// smallest grow), while a reader pays for a codec in every column chunk it
/// opens: the Parquet reader makes a zstd compressor and decompressor for
/// each, and zstd asks the CPU for its features (three `cpuid`s, each a trap
/// in a virtual machine, several microseconds) in each context it makes. These
/// are the columns queries filter and group on most, so they are opened in
/// nearly every row group of nearly every query.
pub(crate) const REPEATING_COLUMNS: [&[&str]; 18] = [
    &["eventversion"],
    &["useridentity", "type"],
    &["useridentity", "arn"],
    &["useridentity", "accountid"],
    &["useridentity", "username"],
    &["eventsource"],
    &["eventname"],
    &["awsregion"],
    &["errorcode"],
    &["errormessage"],
    &["readonly"],
    &["eventtype"],
    &["recipientaccountid"],
    &["eventcategory"],
    &["region"],
    &["year"],
    &["month"],
    &["day"],
];

/// The columns whose pages' least and greatest values the copy keeps (its
/// page index), as column paths: those CloudTrail investigations filter on
/// (the time, the action and its service, the region, the error, the
/// caller, the account). Every other column keeps its statistics per column
/// chunk only.
///
/// Why: a query over a month loads the page index of every part it opens,
/// and decoding it was a tenth of a short query's time, most of it for the
/// ranges of columns no filter uses (identifiers drawn at random, the JSON
/// text, the nested details), whose pages' ranges prune nothing anyway.
pub(crate) const PAGE_STATISTICS_COLUMNS: [&[&str]; 17] = [
    &["eventtime"],
    &["eventname"],
    &["eventsource"],
    &["awsregion"],
    &["errorcode"],
    &["sourceipaddress"],
    &["readonly"],
    &["eventtype"],
    &["eventcategory"],
    &["recipientaccountid"],
    &["useridentity", "type"],
    &["useridentity", "arn"],
    &["useridentity", "accountid"],
    &["useridentity", "username"],
    &["useridentity", "principalid"],
    &["useridentity", "accesskeyid"],
    &["useridentity", "invokedby"],
];

/// `schema` with its string views as plain strings: how results are held
/// (a view keeps the whole buffer it points into alive).
pub fn plain_schema(schema: &Schema) -> SchemaRef {
    strings_as(schema, &DataType::Utf8View, &DataType::Utf8, |_| true)
}

/// `batch`'s columns cast to `schema`, whose fields are its own but for
/// their string types: to [`plain_schema`], a result's strings copied out of
/// the buffers they were read into; to [`read_schema`], fresh events made
/// one with the parts they are queried with.
pub fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
    let engine = |e: datafusion::arrow::error::ArrowError| Error::Engine(e.to_string());
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(engine)?;
    RecordBatch::try_new(schema.clone(), columns).map_err(engine)
}

/// `schema` with the strings of type `from` as `to` in the top-level
/// columns `changed` names (and everything nested in them).
fn strings_as(
    schema: &Schema,
    from: &DataType,
    to: &DataType,
    changed: impl Fn(&str) -> bool,
) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| {
                if changed(f.name()) {
                    field_strings_as(f, from, to)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

fn field_strings_as(field: &Field, from: &DataType, to: &DataType) -> Field {
    let data_type = match field.data_type() {
        t if t == from => to.clone(),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Arc::new(field_strings_as(f, from, to)))
                .collect(),
        ),
        DataType::List(item) => DataType::List(Arc::new(field_strings_as(item, from, to))),
        other => other.clone(),
    };
    field.clone().with_data_type(data_type)
}

/// Members kept as JSON text whatever their JSON type.
const JSON_TEXT_COLUMNS: [&str; 4] = [
    "requestparameters",
    "responseelements",
    "additionaleventdata",
    "serviceeventdetails",
];

/// A value shaped to a field's type (see the module documentation).
fn conform(value: Value, data_type: &DataType, keep_json_text: bool) -> Value {
    match (data_type, value) {
        (_, Value::Null) => Value::Null,
        (DataType::Utf8, Value::String(s)) => Value::String(s),
        (DataType::Utf8, Value::Bool(b)) if !keep_json_text => Value::String(b.to_string()),
        (DataType::Utf8, other) => Value::String(other.to_string()),
        (DataType::Struct(fields), Value::Object(members)) => {
            Value::Object(conform_object(members, fields))
        }
        (DataType::List(item), Value::Array(values)) => Value::Array(
            values
                .into_iter()
                .map(|v| conform(v, item.data_type(), false))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// An object's members matched to `fields` by lower-cased name; the first
/// member of a name wins, members no field names are dropped.
fn conform_object(members: Map<String, Value>, fields: &Fields) -> Map<String, Value> {
    let mut out = Map::with_capacity(fields.len());
    for (name, value) in members {
        let lower = name.to_ascii_lowercase();
        if out.contains_key(&lower) {
            continue;
        }
        if let Some((_, field)) = fields.find(&lower) {
            let text = JSON_TEXT_COLUMNS.contains(&lower.as_str());
            out.insert(lower, conform(value, field.data_type(), text));
        }
    }
    out
}

/// Where a record came from: the partition values of its log file's path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partition {
    /// `<region>` of `.../CloudTrail/<region>/YYYY/MM/DD/`.
    pub region: Option<String>,
    /// `YYYY`.
    pub year: Option<String>,
    /// `MM`.
    pub month: Option<String>,
    /// `DD`.
    pub day: Option<String>,
}

impl Partition {
    /// The partition of a log file's key or path: the four segments after
    /// `CloudTrail/` (`<region>/YYYY/MM/DD`); none when the path is not
    /// CloudTrail's layout.
    pub fn of_path(path: &str) -> Self {
        let segments: Vec<&str> = path.split(['/', '\\']).collect();
        let Some(at) = segments.iter().rposition(|s| *s == "CloudTrail") else {
            return Self::default();
        };
        let part = |i: usize| {
            segments
                .get(at + i)
                .filter(|_| segments.len() > at + 5)
                .map(|s| (*s).to_owned())
        };
        let digits = |s: &Option<String>, n: usize| {
            s.as_ref()
                .is_some_and(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        };
        let (region, year, month, day) = (part(1), part(2), part(3), part(4));
        if !(digits(&year, 4) && digits(&month, 2) && digits(&day, 2)) {
            return Self::default();
        }
        Self {
            region,
            year,
            month,
            day,
        }
    }
}

/// Converts records into one batch of [`cloudtrail_schema`], each record
/// with the partition of the file it came from.
pub fn records_to_batch<P: std::borrow::Borrow<Partition>>(
    records: Vec<(Value, P)>,
) -> Result<RecordBatch, Error> {
    let schema = cloudtrail_schema();
    let fields = schema.fields().clone();
    let rows: Vec<Value> = records
        .into_iter()
        .map(|(record, partition)| {
            let partition = partition.borrow();
            let mut row = match record {
                Value::Object(members) => conform_object(members, &fields),
                _ => Map::new(),
            };
            for (name, value) in PARTITION_COLUMNS.iter().zip([
                &partition.region,
                &partition.year,
                &partition.month,
                &partition.day,
            ]) {
                row.insert((*name).to_owned(), value.clone().into());
            }
            Value::Object(row)
        })
        .collect();
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(&rows)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, ListArray, StructArray};
    use serde_json::json;

    #[test]
    fn test_columns_with_few_values_are_read_as_views_and_the_others_plain() {
        let read = read_schema(&cloudtrail_schema());
        let type_of = |name: &str| read.field_with_name(name).unwrap().data_type().clone();
        for name in [
            "eventname",
            "eventsource",
            "recipientaccountid",
            "sourceipaddress",
        ] {
            assert_eq!(type_of(name), DataType::Utf8View, "{name}");
        }
        for name in EVENT_UNIQUE_COLUMNS.iter().chain(&JSON_TEXT_COLUMNS) {
            assert_eq!(type_of(name), DataType::Utf8, "{name}");
        }
        // Strings inside structs and lists too.
        let DataType::Struct(identity) = type_of("useridentity") else {
            panic!("useridentity is a struct");
        };
        assert_eq!(
            identity.find("arn").unwrap().1.data_type(),
            &DataType::Utf8View
        );
        let DataType::List(item) = type_of("resources") else {
            panic!("resources is a list");
        };
        let DataType::Struct(resource) = item.data_type() else {
            panic!("a resource is a struct");
        };
        assert_eq!(
            resource.find("arn").unwrap().1.data_type(),
            &DataType::Utf8View
        );
        // Results go back to plain strings, nested ones included.
        assert_eq!(plain_schema(&read), cloudtrail_schema());
    }

    #[test]
    fn test_partition_of_cloudtrail_keys() {
        let p = Partition::of_path(
            "AWSLogs/o-abc/123456789012/CloudTrail/eu-west-1/2024/01/05/123456789012_CloudTrail_eu-west-1_20240105T0000Z_x.json.gz",
        );
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            (p.year.as_deref(), p.month.as_deref(), p.day.as_deref()),
            (Some("2024"), Some("01"), Some("05"))
        );
        assert_eq!(
            Partition::of_path("exports/file.json.gz"),
            Partition::default()
        );
        assert_eq!(
            Partition::of_path("CloudTrail/us-east-1/20x4/01/05/f.json.gz"),
            Partition::default()
        );
    }

    #[test]
    fn test_records_of_every_shape_convert() {
        let p = Partition::of_path("AWSLogs/1/CloudTrail/us-east-1/2024/02/03/f.json.gz");
        let records = vec![
            (
                json!({
                    "eventVersion": "1.08",
                    "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/a", "userName": "a",
                                     "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
                    "eventTime": "2024-02-03T10:00:00Z",
                    "requestParameters": {"bucketName": "b"},
                    "readOnly": true,
                    "resources": [{"ARN": "arn:aws:kms:us-east-1:1:key/k", "accountId": "1", "type": "AWS::KMS::Key"}],
                    "unknownMember": 5
                }),
                &p,
            ),
            (
                json!({
                    "userIdentity": "not an object",
                    "requestParameters": "a string",
                    "responseElements": null,
                    "resources": {"not": "a list"},
                    "additionalEventData": ["a", 1],
                    "errorCode": 403
                }),
                &p,
            ),
        ];
        let batch = records_to_batch(records).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let params = column("requestparameters");
        let params = params.as_string::<i32>();
        assert_eq!(params.value(0), r#"{"bucketName":"b"}"#);
        assert_eq!(params.value(1), "a string");
        assert_eq!(column("readonly").as_string::<i32>().value(0), "true");
        assert_eq!(column("errorcode").as_string::<i32>().value(1), "403");
        assert_eq!(
            column("additionaleventdata").as_string::<i32>().value(1),
            r#"["a",1]"#
        );
        let identity = column("useridentity");
        let identity = identity.as_any().downcast_ref::<StructArray>().unwrap();
        assert!(identity.is_null(1));
        assert_eq!(
            identity
                .column_by_name("username")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "a"
        );
        let resources = column("resources");
        let resources = resources.as_any().downcast_ref::<ListArray>().unwrap();
        let first = resources.value(0);
        let first = first.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(
            first
                .column_by_name("arn")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "arn:aws:kms:us-east-1:1:key/k"
        );
        assert!(resources.is_null(1));
        assert_eq!(column("region").as_string::<i32>().value(1), "us-east-1");
        assert_eq!(column("day").as_string::<i32>().value(0), "03");
    }
}
