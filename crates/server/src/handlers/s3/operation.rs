//! Every S3 operation, and the pure function that tells which one a request is.
//!
//! [`S3Operation`] has one row per operation of botocore's S3 model (plus
//! `PostObject`, S3's browser upload, which the model lacks): its botocore
//! name, the IAM action AWS authorizes it as, and whether Cairn serves it or
//! answers `NotImplemented`. [`route`] reads method, bucket, key, query and
//! a few headers, exactly as S3 does, so no request falls through to another
//! operation: a sub-resource Cairn does not serve is refused by name, never
//! taken for CreateBucket, DeleteBucket or ListObjects.

use std::collections::BTreeMap;

use axum::http::Method;

/// Whether Cairn serves an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Served (see [`super::dispatch`]).
    Served,
    /// Answered `NotImplemented` (501), with nothing changed.
    NotImplemented,
}

macro_rules! s3_operations {
    ($( $variant:ident => $action:literal, $support:ident; )*) => {
        /// One S3 operation, named as in botocore's model.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum S3Operation {
            $(
                #[doc = concat!("`", stringify!($variant), "` (`", $action, "`).")]
                $variant,
            )*
        }

        impl S3Operation {
            /// Every operation, in table order.
            pub const ALL: &'static [S3Operation] = &[$(S3Operation::$variant),*];

            /// The operation's name in botocore's model (and CloudTrail's `eventName`).
            pub fn name(self) -> &'static str {
                match self {
                    $(S3Operation::$variant => stringify!($variant),)*
                }
            }

            /// The IAM action AWS authorizes the operation as.
            pub fn iam_action(self) -> &'static str {
                match self {
                    $(S3Operation::$variant => $action,)*
                }
            }

            /// Whether Cairn serves the operation.
            pub fn support(self) -> Support {
                match self {
                    $(S3Operation::$variant => Support::$support,)*
                }
            }
        }
    };
}

s3_operations! {
    // Service level.
    ListBuckets => "s3:ListAllMyBuckets", Served;
    ListDirectoryBuckets => "s3express:ListAllMyDirectoryBuckets", NotImplemented;
    WriteGetObjectResponse => "s3-object-lambda:WriteGetObjectResponse", NotImplemented;
    // Buckets.
    CreateBucket => "s3:CreateBucket", Served;
    DeleteBucket => "s3:DeleteBucket", Served;
    HeadBucket => "s3:ListBucket", Served;
    GetBucketLocation => "s3:GetBucketLocation", Served;
    ListObjects => "s3:ListBucket", Served;
    ListObjectsV2 => "s3:ListBucket", Served;
    ListObjectVersions => "s3:ListBucketVersions", NotImplemented;
    ListMultipartUploads => "s3:ListBucketMultipartUploads", Served;
    DeleteObjects => "s3:DeleteObject", Served;
    PostObject => "s3:PutObject", NotImplemented;
    CreateSession => "s3express:CreateSession", NotImplemented;
    GetBucketAbac => "s3:GetBucketABAC", NotImplemented;
    PutBucketAbac => "s3:PutBucketABAC", NotImplemented;
    GetBucketAccelerateConfiguration => "s3:GetAccelerateConfiguration", NotImplemented;
    PutBucketAccelerateConfiguration => "s3:PutAccelerateConfiguration", NotImplemented;
    GetBucketAcl => "s3:GetBucketAcl", NotImplemented;
    PutBucketAcl => "s3:PutBucketAcl", NotImplemented;
    GetBucketAnalyticsConfiguration => "s3:GetAnalyticsConfiguration", NotImplemented;
    ListBucketAnalyticsConfigurations => "s3:GetAnalyticsConfiguration", NotImplemented;
    PutBucketAnalyticsConfiguration => "s3:PutAnalyticsConfiguration", NotImplemented;
    DeleteBucketAnalyticsConfiguration => "s3:PutAnalyticsConfiguration", NotImplemented;
    GetBucketCors => "s3:GetBucketCORS", NotImplemented;
    PutBucketCors => "s3:PutBucketCORS", NotImplemented;
    DeleteBucketCors => "s3:PutBucketCORS", NotImplemented;
    GetBucketEncryption => "s3:GetEncryptionConfiguration", NotImplemented;
    PutBucketEncryption => "s3:PutEncryptionConfiguration", NotImplemented;
    DeleteBucketEncryption => "s3:PutEncryptionConfiguration", NotImplemented;
    GetBucketIntelligentTieringConfiguration => "s3:GetIntelligentTieringConfiguration", NotImplemented;
    ListBucketIntelligentTieringConfigurations => "s3:GetIntelligentTieringConfiguration", NotImplemented;
    PutBucketIntelligentTieringConfiguration => "s3:PutIntelligentTieringConfiguration", NotImplemented;
    DeleteBucketIntelligentTieringConfiguration => "s3:PutIntelligentTieringConfiguration", NotImplemented;
    GetBucketInventoryConfiguration => "s3:GetInventoryConfiguration", NotImplemented;
    ListBucketInventoryConfigurations => "s3:GetInventoryConfiguration", NotImplemented;
    PutBucketInventoryConfiguration => "s3:PutInventoryConfiguration", NotImplemented;
    DeleteBucketInventoryConfiguration => "s3:PutInventoryConfiguration", NotImplemented;
    GetBucketLifecycleConfiguration => "s3:GetLifecycleConfiguration", NotImplemented;
    PutBucketLifecycleConfiguration => "s3:PutLifecycleConfiguration", NotImplemented;
    DeleteBucketLifecycle => "s3:PutLifecycleConfiguration", NotImplemented;
    GetBucketLogging => "s3:GetBucketLogging", NotImplemented;
    PutBucketLogging => "s3:PutBucketLogging", NotImplemented;
    GetBucketMetadataConfiguration => "s3:GetBucketMetadataTableConfiguration", NotImplemented;
    CreateBucketMetadataConfiguration => "s3:CreateBucketMetadataTableConfiguration", NotImplemented;
    DeleteBucketMetadataConfiguration => "s3:DeleteBucketMetadataTableConfiguration", NotImplemented;
    UpdateBucketMetadataInventoryTableConfiguration => "s3:UpdateBucketMetadataInventoryTableConfiguration", NotImplemented;
    UpdateBucketMetadataJournalTableConfiguration => "s3:UpdateBucketMetadataJournalTableConfiguration", NotImplemented;
    GetBucketMetadataTableConfiguration => "s3:GetBucketMetadataTableConfiguration", NotImplemented;
    CreateBucketMetadataTableConfiguration => "s3:CreateBucketMetadataTableConfiguration", NotImplemented;
    DeleteBucketMetadataTableConfiguration => "s3:DeleteBucketMetadataTableConfiguration", NotImplemented;
    GetBucketMetricsConfiguration => "s3:GetMetricsConfiguration", NotImplemented;
    ListBucketMetricsConfigurations => "s3:GetMetricsConfiguration", NotImplemented;
    PutBucketMetricsConfiguration => "s3:PutMetricsConfiguration", NotImplemented;
    DeleteBucketMetricsConfiguration => "s3:PutMetricsConfiguration", NotImplemented;
    GetBucketNotificationConfiguration => "s3:GetBucketNotification", NotImplemented;
    PutBucketNotificationConfiguration => "s3:PutBucketNotification", NotImplemented;
    GetObjectLockConfiguration => "s3:GetBucketObjectLockConfiguration", NotImplemented;
    PutObjectLockConfiguration => "s3:PutBucketObjectLockConfiguration", NotImplemented;
    GetBucketOwnershipControls => "s3:GetBucketOwnershipControls", NotImplemented;
    PutBucketOwnershipControls => "s3:PutBucketOwnershipControls", NotImplemented;
    DeleteBucketOwnershipControls => "s3:PutBucketOwnershipControls", NotImplemented;
    GetBucketPolicy => "s3:GetBucketPolicy", NotImplemented;
    PutBucketPolicy => "s3:PutBucketPolicy", NotImplemented;
    DeleteBucketPolicy => "s3:DeleteBucketPolicy", NotImplemented;
    GetBucketPolicyStatus => "s3:GetBucketPolicyStatus", NotImplemented;
    GetPublicAccessBlock => "s3:GetBucketPublicAccessBlock", NotImplemented;
    PutPublicAccessBlock => "s3:PutBucketPublicAccessBlock", NotImplemented;
    DeletePublicAccessBlock => "s3:PutBucketPublicAccessBlock", NotImplemented;
    GetBucketReplication => "s3:GetReplicationConfiguration", NotImplemented;
    PutBucketReplication => "s3:PutReplicationConfiguration", NotImplemented;
    DeleteBucketReplication => "s3:PutReplicationConfiguration", NotImplemented;
    GetBucketRequestPayment => "s3:GetBucketRequestPayment", NotImplemented;
    PutBucketRequestPayment => "s3:PutBucketRequestPayment", NotImplemented;
    GetBucketTagging => "s3:GetBucketTagging", NotImplemented;
    PutBucketTagging => "s3:PutBucketTagging", NotImplemented;
    DeleteBucketTagging => "s3:PutBucketTagging", NotImplemented;
    GetBucketVersioning => "s3:GetBucketVersioning", NotImplemented;
    PutBucketVersioning => "s3:PutBucketVersioning", NotImplemented;
    GetBucketWebsite => "s3:GetBucketWebsite", NotImplemented;
    PutBucketWebsite => "s3:PutBucketWebsite", NotImplemented;
    DeleteBucketWebsite => "s3:DeleteBucketWebsite", NotImplemented;
    // Objects.
    GetObject => "s3:GetObject", Served;
    HeadObject => "s3:GetObject", Served;
    PutObject => "s3:PutObject", Served;
    CopyObject => "s3:PutObject", Served;
    DeleteObject => "s3:DeleteObject", Served;
    CreateMultipartUpload => "s3:PutObject", Served;
    UploadPart => "s3:PutObject", Served;
    UploadPartCopy => "s3:PutObject", Served;
    CompleteMultipartUpload => "s3:PutObject", Served;
    AbortMultipartUpload => "s3:AbortMultipartUpload", Served;
    ListParts => "s3:ListMultipartUploadParts", Served;
    GetObjectAcl => "s3:GetObjectAcl", NotImplemented;
    PutObjectAcl => "s3:PutObjectAcl", NotImplemented;
    GetObjectAttributes => "s3:GetObjectAttributes", NotImplemented;
    UpdateObjectEncryption => "s3:UpdateObjectEncryption", NotImplemented;
    GetObjectLegalHold => "s3:GetObjectLegalHold", NotImplemented;
    PutObjectLegalHold => "s3:PutObjectLegalHold", NotImplemented;
    RenameObject => "s3express:CreateSession", NotImplemented;
    RestoreObject => "s3:RestoreObject", NotImplemented;
    GetObjectRetention => "s3:GetObjectRetention", NotImplemented;
    PutObjectRetention => "s3:PutObjectRetention", NotImplemented;
    SelectObjectContent => "s3:GetObject", NotImplemented;
    GetObjectTagging => "s3:GetObjectTagging", NotImplemented;
    PutObjectTagging => "s3:PutObjectTagging", NotImplemented;
    DeleteObjectTagging => "s3:DeleteObjectTagging", NotImplemented;
    GetObjectTorrent => "s3:GetObjectTorrent", NotImplemented;
}

impl S3Operation {
    /// Whether the operation acts on a bucket that must exist (everything but
    /// the service-level operations and CreateBucket).
    pub fn needs_bucket(self) -> bool {
        !matches!(
            self,
            S3Operation::ListBuckets
                | S3Operation::ListDirectoryBuckets
                | S3Operation::WriteGetObjectResponse
                | S3Operation::CreateBucket
        )
    }
}

/// Why a request is no S3 operation at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The method is not allowed on that resource (S3's `MethodNotAllowed`).
    MethodNotAllowed,
}

/// The decoded query of a request: name → value (the last one wins; a
/// parameter without `=` has an empty value).
pub type Query = BTreeMap<String, String>;

/// The headers routing looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteHeaders<'a> {
    /// `x-amz-copy-source`.
    pub copy_source: Option<&'a str>,
}

/// A bucket sub-resource: its name and its operation for GET, PUT, DELETE and POST.
type BucketRow = (
    &'static str,
    S3Operation,
    Option<S3Operation>,
    Option<S3Operation>,
    Option<S3Operation>,
);

/// An object sub-resource: its name and its operation for GET/HEAD, PUT, DELETE and POST.
type ObjectRow = (
    &'static str,
    Option<S3Operation>,
    Option<S3Operation>,
    Option<S3Operation>,
    Option<S3Operation>,
);

/// Bucket sub-resources, each with its operation per method, in the order
/// S3 resolves them. A GET that names an `id` is the single-configuration
/// operation; without, the list operation.
fn bucket_subresource(method: &Method, query: &Query) -> Option<Result<S3Operation, RouteError>> {
    use S3Operation as Op;
    let has = |name: &str| query.contains_key(name);
    let by_method = |get: Op, put: Option<Op>, delete: Option<Op>, post: Option<Op>| match *method {
        Method::GET => Some(get),
        Method::PUT => put,
        Method::DELETE => delete,
        Method::POST => post,
        _ => None,
    };
    // (sub-resource, GET, PUT, DELETE, POST); a method without an operation
    // is MethodNotAllowed, never another operation.
    let configured = |single: Op, list: Op| if has("id") { single } else { list };
    let table: [BucketRow; 31] = [
        (
            "abac",
            Op::GetBucketAbac,
            Some(Op::PutBucketAbac),
            None,
            None,
        ),
        (
            "accelerate",
            Op::GetBucketAccelerateConfiguration,
            Some(Op::PutBucketAccelerateConfiguration),
            None,
            None,
        ),
        ("acl", Op::GetBucketAcl, Some(Op::PutBucketAcl), None, None),
        (
            "analytics",
            configured(
                Op::GetBucketAnalyticsConfiguration,
                Op::ListBucketAnalyticsConfigurations,
            ),
            Some(Op::PutBucketAnalyticsConfiguration),
            Some(Op::DeleteBucketAnalyticsConfiguration),
            None,
        ),
        (
            "cors",
            Op::GetBucketCors,
            Some(Op::PutBucketCors),
            Some(Op::DeleteBucketCors),
            None,
        ),
        (
            "delete",
            Op::DeleteObjects,
            None,
            None,
            Some(Op::DeleteObjects),
        ),
        (
            "encryption",
            Op::GetBucketEncryption,
            Some(Op::PutBucketEncryption),
            Some(Op::DeleteBucketEncryption),
            None,
        ),
        (
            "intelligent-tiering",
            configured(
                Op::GetBucketIntelligentTieringConfiguration,
                Op::ListBucketIntelligentTieringConfigurations,
            ),
            Some(Op::PutBucketIntelligentTieringConfiguration),
            Some(Op::DeleteBucketIntelligentTieringConfiguration),
            None,
        ),
        (
            "inventory",
            configured(
                Op::GetBucketInventoryConfiguration,
                Op::ListBucketInventoryConfigurations,
            ),
            Some(Op::PutBucketInventoryConfiguration),
            Some(Op::DeleteBucketInventoryConfiguration),
            None,
        ),
        (
            "lifecycle",
            Op::GetBucketLifecycleConfiguration,
            Some(Op::PutBucketLifecycleConfiguration),
            Some(Op::DeleteBucketLifecycle),
            None,
        ),
        ("location", Op::GetBucketLocation, None, None, None),
        (
            "logging",
            Op::GetBucketLogging,
            Some(Op::PutBucketLogging),
            None,
            None,
        ),
        (
            "metadataConfiguration",
            Op::GetBucketMetadataConfiguration,
            None,
            Some(Op::DeleteBucketMetadataConfiguration),
            Some(Op::CreateBucketMetadataConfiguration),
        ),
        (
            "metadataInventoryTable",
            Op::GetBucketMetadataConfiguration,
            Some(Op::UpdateBucketMetadataInventoryTableConfiguration),
            None,
            None,
        ),
        (
            "metadataJournalTable",
            Op::GetBucketMetadataConfiguration,
            Some(Op::UpdateBucketMetadataJournalTableConfiguration),
            None,
            None,
        ),
        (
            "metadataTable",
            Op::GetBucketMetadataTableConfiguration,
            None,
            Some(Op::DeleteBucketMetadataTableConfiguration),
            Some(Op::CreateBucketMetadataTableConfiguration),
        ),
        (
            "metrics",
            configured(
                Op::GetBucketMetricsConfiguration,
                Op::ListBucketMetricsConfigurations,
            ),
            Some(Op::PutBucketMetricsConfiguration),
            Some(Op::DeleteBucketMetricsConfiguration),
            None,
        ),
        (
            "notification",
            Op::GetBucketNotificationConfiguration,
            Some(Op::PutBucketNotificationConfiguration),
            None,
            None,
        ),
        (
            "object-lock",
            Op::GetObjectLockConfiguration,
            Some(Op::PutObjectLockConfiguration),
            None,
            None,
        ),
        (
            "ownershipControls",
            Op::GetBucketOwnershipControls,
            Some(Op::PutBucketOwnershipControls),
            Some(Op::DeleteBucketOwnershipControls),
            None,
        ),
        (
            "policy",
            Op::GetBucketPolicy,
            Some(Op::PutBucketPolicy),
            Some(Op::DeleteBucketPolicy),
            None,
        ),
        ("policyStatus", Op::GetBucketPolicyStatus, None, None, None),
        (
            "publicAccessBlock",
            Op::GetPublicAccessBlock,
            Some(Op::PutPublicAccessBlock),
            Some(Op::DeletePublicAccessBlock),
            None,
        ),
        (
            "replication",
            Op::GetBucketReplication,
            Some(Op::PutBucketReplication),
            Some(Op::DeleteBucketReplication),
            None,
        ),
        (
            "requestPayment",
            Op::GetBucketRequestPayment,
            Some(Op::PutBucketRequestPayment),
            None,
            None,
        ),
        ("session", Op::CreateSession, None, None, None),
        (
            "tagging",
            Op::GetBucketTagging,
            Some(Op::PutBucketTagging),
            Some(Op::DeleteBucketTagging),
            None,
        ),
        ("uploads", Op::ListMultipartUploads, None, None, None),
        (
            "versioning",
            Op::GetBucketVersioning,
            Some(Op::PutBucketVersioning),
            None,
            None,
        ),
        ("versions", Op::ListObjectVersions, None, None, None),
        (
            "website",
            Op::GetBucketWebsite,
            Some(Op::PutBucketWebsite),
            Some(Op::DeleteBucketWebsite),
            None,
        ),
    ];
    for (name, get, put, delete, post) in table {
        if has(name) {
            return Some(by_method(get, put, delete, post).ok_or(RouteError::MethodNotAllowed));
        }
    }
    None
}

/// Object sub-resources, in the order S3 resolves them.
fn object_subresource(method: &Method, query: &Query) -> Option<Option<S3Operation>> {
    use S3Operation as Op;
    let has = |name: &str| query.contains_key(name);
    let pick =
        |get: Option<Op>, put: Option<Op>, delete: Option<Op>, post: Option<Op>| match *method {
            Method::GET | Method::HEAD => get,
            Method::PUT => put,
            Method::DELETE => delete,
            Method::POST => post,
            _ => None,
        };
    let table: [ObjectRow; 11] = [
        (
            "acl",
            Some(Op::GetObjectAcl),
            Some(Op::PutObjectAcl),
            None,
            None,
        ),
        (
            "attributes",
            Some(Op::GetObjectAttributes),
            None,
            None,
            None,
        ),
        (
            "encryption",
            None,
            Some(Op::UpdateObjectEncryption),
            None,
            None,
        ),
        (
            "legal-hold",
            Some(Op::GetObjectLegalHold),
            Some(Op::PutObjectLegalHold),
            None,
            None,
        ),
        ("renameObject", None, Some(Op::RenameObject), None, None),
        ("restore", None, None, None, Some(Op::RestoreObject)),
        (
            "retention",
            Some(Op::GetObjectRetention),
            Some(Op::PutObjectRetention),
            None,
            None,
        ),
        ("select", None, None, None, Some(Op::SelectObjectContent)),
        (
            "tagging",
            Some(Op::GetObjectTagging),
            Some(Op::PutObjectTagging),
            Some(Op::DeleteObjectTagging),
            None,
        ),
        ("torrent", Some(Op::GetObjectTorrent), None, None, None),
        ("uploads", None, None, None, Some(Op::CreateMultipartUpload)),
    ];
    for (name, get, put, delete, post) in table {
        if has(name) {
            return Some(pick(get, put, delete, post));
        }
    }
    None
}

/// Which operation a path-style request is. `bucket` is empty for the
/// service root; `key` is `None` for a bucket request.
pub fn route(
    method: &Method,
    bucket: &str,
    key: Option<&str>,
    query: &Query,
    headers: RouteHeaders<'_>,
) -> Result<S3Operation, RouteError> {
    use S3Operation as Op;
    if bucket.is_empty() {
        return match *method {
            Method::GET => Ok(Op::ListBuckets),
            _ => Err(RouteError::MethodNotAllowed),
        };
    }
    let Some(_key) = key else {
        if *method == Method::POST && bucket == "WriteGetObjectResponse" {
            return Ok(Op::WriteGetObjectResponse);
        }
        if let Some(op) = bucket_subresource(method, query) {
            return op;
        }
        return match *method {
            Method::PUT => Ok(Op::CreateBucket),
            Method::DELETE => Ok(Op::DeleteBucket),
            Method::HEAD => Ok(Op::HeadBucket),
            Method::GET if query.get("list-type").map(String::as_str) == Some("2") => {
                Ok(Op::ListObjectsV2)
            }
            Method::GET => Ok(Op::ListObjects),
            Method::POST => Ok(Op::PostObject),
            _ => Err(RouteError::MethodNotAllowed),
        };
    };
    if let Some(op) = object_subresource(method, query) {
        return op.ok_or(RouteError::MethodNotAllowed);
    }
    let multipart = query.contains_key("uploadId");
    let part = query.contains_key("partNumber");
    match *method {
        Method::GET if multipart => Ok(Op::ListParts),
        Method::GET => Ok(Op::GetObject),
        Method::HEAD => Ok(Op::HeadObject),
        Method::PUT if multipart && part && headers.copy_source.is_some() => Ok(Op::UploadPartCopy),
        Method::PUT if multipart || part => Ok(Op::UploadPart),
        Method::PUT if headers.copy_source.is_some() => Ok(Op::CopyObject),
        Method::PUT => Ok(Op::PutObject),
        Method::DELETE if multipart => Ok(Op::AbortMultipartUpload),
        Method::DELETE => Ok(Op::DeleteObject),
        Method::POST if multipart => Ok(Op::CompleteMultipartUpload),
        _ => Err(RouteError::MethodNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bucket(method: Method, query: &[(&str, &str)]) -> S3Operation {
        route(&method, "b", None, &q(query), RouteHeaders::default()).unwrap()
    }

    fn object(method: Method, query: &[(&str, &str)], copy: Option<&str>) -> S3Operation {
        let headers = RouteHeaders { copy_source: copy };
        route(&method, "b", Some("k"), &q(query), headers).unwrap()
    }

    #[test]
    fn test_bucket_subresources_never_fall_through() {
        use S3Operation as Op;
        assert_eq!(
            bucket(Method::DELETE, &[("policy", "")]),
            Op::DeleteBucketPolicy
        );
        assert_eq!(
            bucket(Method::PUT, &[("versioning", "")]),
            Op::PutBucketVersioning
        );
        assert_eq!(
            bucket(Method::GET, &[("publicAccessBlock", "")]),
            Op::GetPublicAccessBlock
        );
        assert_eq!(
            bucket(Method::GET, &[("logging", "")]),
            Op::GetBucketLogging
        );
        assert_eq!(
            bucket(Method::PUT, &[("object-lock", "")]),
            Op::PutObjectLockConfiguration
        );
        assert_eq!(
            bucket(Method::GET, &[("metrics", "")]),
            Op::ListBucketMetricsConfigurations
        );
        assert_eq!(
            bucket(Method::GET, &[("metrics", ""), ("id", "x")]),
            Op::GetBucketMetricsConfiguration
        );
        assert_eq!(bucket(Method::POST, &[("delete", "")]), Op::DeleteObjects);
        assert_eq!(
            bucket(Method::GET, &[("uploads", "")]),
            Op::ListMultipartUploads
        );
        assert_eq!(
            bucket(Method::GET, &[("list-type", "2")]),
            Op::ListObjectsV2
        );
        assert_eq!(bucket(Method::GET, &[("prefix", "a")]), Op::ListObjects);
        assert_eq!(bucket(Method::PUT, &[]), Op::CreateBucket);
        assert_eq!(bucket(Method::DELETE, &[]), Op::DeleteBucket);
        assert_eq!(bucket(Method::POST, &[]), Op::PostObject);
        // A sub-resource with no operation for the method is refused, not routed elsewhere.
        assert_eq!(
            route(
                &Method::PUT,
                "b",
                None,
                &q(&[("location", "")]),
                RouteHeaders::default()
            ),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            route(
                &Method::DELETE,
                "b",
                None,
                &q(&[("versioning", "")]),
                RouteHeaders::default()
            ),
            Err(RouteError::MethodNotAllowed)
        );
    }

    #[test]
    fn test_object_operations() {
        use S3Operation as Op;
        assert_eq!(object(Method::PUT, &[], None), Op::PutObject);
        assert_eq!(object(Method::PUT, &[], Some("/a/b")), Op::CopyObject);
        let part = [("partNumber", "1"), ("uploadId", "u")];
        assert_eq!(object(Method::PUT, &part, None), Op::UploadPart);
        assert_eq!(object(Method::PUT, &part, Some("/a/b")), Op::UploadPartCopy);
        assert_eq!(
            object(Method::POST, &[("uploads", "")], None),
            Op::CreateMultipartUpload
        );
        assert_eq!(
            object(Method::POST, &[("uploadId", "u")], None),
            Op::CompleteMultipartUpload
        );
        assert_eq!(
            object(Method::DELETE, &[("uploadId", "u")], None),
            Op::AbortMultipartUpload
        );
        assert_eq!(
            object(Method::GET, &[("uploadId", "u")], None),
            Op::ListParts
        );
        assert_eq!(
            object(Method::DELETE, &[("tagging", "")], None),
            Op::DeleteObjectTagging
        );
        assert_eq!(
            object(Method::PUT, &[("retention", "")], None),
            Op::PutObjectRetention
        );
        assert_eq!(
            object(Method::POST, &[("select", ""), ("select-type", "2")], None),
            Op::SelectObjectContent
        );
        assert_eq!(
            object(Method::GET, &[("attributes", "")], None),
            Op::GetObjectAttributes
        );
        assert_eq!(object(Method::GET, &[], None), Op::GetObject);
        assert_eq!(object(Method::HEAD, &[], None), Op::HeadObject);
        assert_eq!(object(Method::DELETE, &[], None), Op::DeleteObject);
        assert_eq!(
            route(
                &Method::POST,
                "b",
                Some("k"),
                &q(&[]),
                RouteHeaders::default()
            ),
            Err(RouteError::MethodNotAllowed)
        );
    }

    #[test]
    fn test_table_rows() {
        let names: std::collections::BTreeSet<_> =
            S3Operation::ALL.iter().map(|op| op.name()).collect();
        assert_eq!(names.len(), S3Operation::ALL.len());
        for op in S3Operation::ALL {
            assert!(op.iam_action().contains(':'), "{op:?}");
        }
        assert_eq!(S3Operation::ListObjectsV2.iam_action(), "s3:ListBucket");
        assert_eq!(S3Operation::HeadObject.iam_action(), "s3:GetObject");
        assert_eq!(S3Operation::DeleteObjects.iam_action(), "s3:DeleteObject");
        assert_eq!(S3Operation::UploadPart.iam_action(), "s3:PutObject");
        assert_eq!(
            S3Operation::PutBucketPolicy.support(),
            Support::NotImplemented
        );
        assert_eq!(S3Operation::PutObject.support(), Support::Served);
    }
}
