//! A deterministic generator of realistic CloudTrail event records.
//!
//! The traffic mix follows public profiles of management-event traffic, as the
//! project's `gen_cloudtrail.py` tool does: mostly read-only calls by assumed
//! roles and services; a few percent of access-denied, throttling and
//! not-found errors; console logins with and without MFA (some failing); root
//! activity; IAM, security-group, KMS, S3 and CloudTrail configuration changes;
//! and S3, Lambda and DynamoDB data events with their `resources`.
//!
//! **Determinism.** The same seed and options give byte-identical records on
//! every machine and build: the PRNG is specified here (`rng.rs`), the
//! JSON is written with a fixed key order (`json.rs`) and no floating
//! point result depends on the platform's math library. The output is not
//! byte-compatible with the Python tool (different PRNG), only alike in kind.
//!
//! Keys appear in the order CloudTrail writes them (`eventVersion`,
//! `userIdentity`, `eventTime`, ..., `eventCategory`, `tlsDetails`).

use chrono::{DateTime, TimeZone, Utc};

use crate::json::ObjectWriter;
use crate::rng::{SplitMix64, hash_strings};

/// The accounts records are attributed to when the caller names none.
pub const DEFAULT_ACCOUNTS: &[&str] = &[
    "123456789012",
    "210987654321",
    "111122223333",
    "444455556666",
];

/// The regions regional events are spread over when the caller names none;
/// a region listed several times is drawn that much more often.
pub const DEFAULT_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-1",
    "us-east-1",
    "us-east-1",
    "us-east-1",
    "us-east-1",
    "us-west-2",
    "us-west-2",
    "us-west-2",
    "eu-west-1",
    "eu-west-1",
    "ap-southeast-2",
];

/// Mean events per second of simulated time when the caller says nothing.
pub const DEFAULT_EVENTS_PER_SECOND: f64 = 50.0;

/// What the generator produces; see [`Generator::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorOptions {
    /// Recipient accounts, drawn uniformly (the server accepts only its own
    /// account and its organization's members). Empty means [`DEFAULT_ACCOUNTS`].
    pub accounts: Vec<String>,
    /// Regions of regional events, drawn uniformly (repeat one to weight it).
    /// Global services (IAM, sign-in, Organizations) always record `us-east-1`,
    /// as CloudTrail does. Empty means [`DEFAULT_REGIONS`].
    pub regions: Vec<String>,
    /// The simulated clock's start; the first event comes shortly after.
    pub start_time: DateTime<Utc>,
    /// Mean events per second of simulated time (exponential inter-arrival
    /// times). Not a positive finite number means [`DEFAULT_EVENTS_PER_SECOND`].
    pub events_per_second: f64,
}

impl Default for GeneratorOptions {
    /// The Python tool's defaults: four accounts, weighted regions, 50 events
    /// per second starting at 2026-11-01T00:00:00Z (a fixed time, so the default
    /// output is reproducible; loadgen passes "now" instead).
    fn default() -> Self {
        Self {
            accounts: DEFAULT_ACCOUNTS.iter().map(|s| (*s).to_owned()).collect(),
            regions: DEFAULT_REGIONS.iter().map(|s| (*s).to_owned()).collect(),
            start_time: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            events_per_second: DEFAULT_EVENTS_PER_SECOND,
        }
    }
}

/// One kind of API call in the mix.
struct Call {
    source: &'static str,
    name: &'static str,
    read_only: bool,
    weight: u64,
    data: bool,
}

const fn call(
    source: &'static str,
    name: &'static str,
    read_only: bool,
    weight: u64,
    data: bool,
) -> Call {
    Call {
        source,
        name,
        read_only,
        weight,
        data,
    }
}

const EC2: &str = "ec2.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const KMS: &str = "kms.amazonaws.com";
const S3: &str = "s3.amazonaws.com";
const STS: &str = "sts.amazonaws.com";
const LAMBDA: &str = "lambda.amazonaws.com";
const DYNAMODB: &str = "dynamodb.amazonaws.com";
const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";
const CONFIG: &str = "config.amazonaws.com";
const ORGANIZATIONS: &str = "organizations.amazonaws.com";
const SIGNIN: &str = "signin.amazonaws.com";
/// Global services record their events in us-east-1.
const GLOBAL_SOURCES: &[&str] = &[IAM, SIGNIN, ORGANIZATIONS];
const GLOBAL_REGION: &str = "us-east-1";

/// The weighted call mix (weights are relative frequencies).
const CALLS: &[Call] = &[
    call(STS, "AssumeRole", true, 120, false),
    call(STS, "GetCallerIdentity", true, 40, false),
    call(EC2, "DescribeInstances", true, 90, false),
    call(EC2, "DescribeSecurityGroups", true, 40, false),
    call(EC2, "RunInstances", false, 6, false),
    call(EC2, "TerminateInstances", false, 4, false),
    call(EC2, "AuthorizeSecurityGroupIngress", false, 3, false),
    call(EC2, "RevokeSecurityGroupIngress", false, 2, false),
    call(EC2, "CreateSecurityGroup", false, 2, false),
    call(EC2, "DeleteSecurityGroup", false, 1, false),
    call(EC2, "CreateNetworkAcl", false, 1, false),
    call(EC2, "DeleteNetworkAclEntry", false, 1, false),
    call(EC2, "CreateRoute", false, 1, false),
    call(EC2, "DeleteVpc", false, 1, false),
    call(IAM, "ListRoles", true, 20, false),
    call(IAM, "GetUser", true, 15, false),
    call(IAM, "CreatePolicy", false, 2, false),
    call(IAM, "DeletePolicy", false, 1, false),
    call(IAM, "AttachRolePolicy", false, 2, false),
    call(IAM, "DetachRolePolicy", false, 1, false),
    call(IAM, "AttachUserPolicy", false, 1, false),
    call(IAM, "PutUserPolicy", false, 1, false),
    call(IAM, "CreateAccessKey", false, 1, false),
    call(IAM, "DeleteUser", false, 1, false),
    call(KMS, "Decrypt", true, 60, false),
    call(KMS, "GenerateDataKey", true, 30, false),
    call(KMS, "Encrypt", true, 10, false),
    call(KMS, "DisableKey", false, 1, false),
    call(KMS, "ScheduleKeyDeletion", false, 1, false),
    call(S3, "ListBuckets", true, 15, false),
    call(S3, "GetBucketPolicy", true, 8, false),
    call(S3, "PutBucketPolicy", false, 1, false),
    call(S3, "DeleteBucketPolicy", false, 1, false),
    call(S3, "PutBucketAcl", false, 1, false),
    call(S3, "GetObject", true, 70, true),
    call(S3, "PutObject", false, 30, true),
    call(S3, "DeleteObject", false, 5, true),
    call(LAMBDA, "Invoke", false, 25, true),
    call(DYNAMODB, "GetItem", true, 20, true),
    call(DYNAMODB, "PutItem", false, 10, true),
    call(CLOUDTRAIL, "LookupEvents", true, 3, false),
    call(CLOUDTRAIL, "StopLogging", false, 1, false),
    call(CLOUDTRAIL, "UpdateTrail", false, 1, false),
    call(CLOUDTRAIL, "DeleteTrail", false, 1, false),
    call(CONFIG, "StopConfigurationRecorder", false, 1, false),
    call(ORGANIZATIONS, "ListAccounts", true, 3, false),
    call(SIGNIN, "ConsoleLogin", false, 6, false),
];

const USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ci-deployer",
    "suspicious-user",
];
const ROLES: &[&str] = &[
    "Admin",
    "ReadOnly",
    "Deploy",
    "lambda-exec",
    "ecs-task",
    "OrganizationAccountAccessRole",
];
const NON_USER_SESSIONS: &[&str] = &["i-0abc123def4567890", "botocore-session-1712000000"];
const SERVICES: &[&str] = &[EC2, LAMBDA, CONFIG];
const BUCKETS: &[&str] = &[
    "sensitive-data-bucket",
    "pii-bucket",
    "financial-data",
    "app-assets",
    "build-artifacts",
];
const KEY_PREFIXES: &[&str] = &["reports", "exports", "users", "tmp"];
const FUNCTIONS: &[&str] = &["ingest", "resize", "auth"];
const TABLES: &[&str] = &["orders", "sessions"];
const POLICIES: &[&str] = &["Admin", "S3Full", "Billing"];
const INSTANCE_TYPES: &[&str] = &["t3.micro", "t3.large", "m7g.xlarge", "c7i.2xlarge"];
/// `{svc}` is the service prefix (`ec2`), `{op}` the CLI command (`describe-instances`).
const AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64.amzn.2023 prompt/off command/{svc}.{op}",
    "Boto3/1.34.70 md/Botocore#1.34.70 ua/2.0 os/linux#6.1 lang/python#3.11.8 cfg/retry-mode#legacy Botocore/1.34.70",
    "aws-sdk-go-v2/1.26.0 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/{svc}#1.0",
    "console.amazonaws.com",
    "Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0",
    "AWS Internal",
];
const BROWSER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36";
const FIRST_OCTETS: &[&str] = &["198", "203", "192", "52", "54", "3"];
/// AWS's key-ID alphabet (base 32).
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX: &[u8] = b"0123456789abcdef";

/// Who made the call.
enum Identity {
    Root,
    IamUser {
        user: &'static str,
    },
    AssumedRole {
        role: &'static str,
        session: &'static str,
        mfa: bool,
        created: DateTime<Utc>,
    },
    Service {
        invoked_by: &'static str,
    },
}

/// Generates CloudTrail records, one JSON text at a time, from a seed.
///
/// ```
/// use cairn_gen::{Generator, GeneratorOptions};
/// let mut a = Generator::new(7, GeneratorOptions::default());
/// let mut b = Generator::new(7, GeneratorOptions::default());
/// assert_eq!(a.next_record(), b.next_record());
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    rng: SplitMix64,
    accounts: Vec<String>,
    regions: Vec<String>,
    events_per_second: f64,
    /// Simulated clock, microseconds since the epoch.
    clock_micros: i64,
    total_weight: u64,
    generated: u64,
}

impl Generator {
    /// A generator whose whole output is fixed by `seed` and `options`.
    pub fn new(seed: u64, options: GeneratorOptions) -> Self {
        let GeneratorOptions {
            accounts,
            regions,
            start_time,
            events_per_second,
        } = options;
        let or_default = |list: Vec<String>, default: &[&str]| {
            if list.is_empty() {
                default.iter().map(|s| (*s).to_owned()).collect()
            } else {
                list
            }
        };
        Self {
            rng: SplitMix64::new(seed),
            accounts: or_default(accounts, DEFAULT_ACCOUNTS),
            regions: or_default(regions, DEFAULT_REGIONS),
            events_per_second: if events_per_second.is_finite() && events_per_second > 0.0 {
                events_per_second
            } else {
                DEFAULT_EVENTS_PER_SECOND
            },
            clock_micros: start_time.timestamp_micros(),
            total_weight: CALLS.iter().map(|c| c.weight).sum(),
            generated: 0,
        }
    }

    /// The next record as compact JSON text.
    pub fn next_record(&mut self) -> String {
        let mut out = String::with_capacity(1536);
        self.write_next_record(&mut out);
        out
    }

    /// Appends the next record to `out` (saves an allocation per record in loops).
    pub fn write_next_record(&mut self, out: &mut String) {
        let step = self.rng.exponential_micros(self.events_per_second);
        self.clock_micros = self
            .clock_micros
            .saturating_add(i64::try_from(step).unwrap_or(i64::MAX));
        let time = DateTime::<Utc>::from_timestamp_micros(self.clock_micros)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.generated += 1;
        Record::draw(self, time).write(out);
    }

    /// How many records this generator has produced.
    pub fn records_generated(&self) -> u64 {
        self.generated
    }

    fn pick_call(&mut self) -> &'static Call {
        let mut ticket = self.rng.below(self.total_weight);
        for c in CALLS {
            if ticket < c.weight {
                return c;
            }
            ticket -= c.weight;
        }
        // Unreachable: tickets are below the sum of the weights.
        &CALLS[0]
    }
}

impl Iterator for Generator {
    type Item = String;

    /// Never ends: the generator is unbounded; bound it with `take`.
    fn next(&mut self) -> Option<String> {
        Some(self.next_record())
    }
}

/// Every decision for one record, drawn first and written after, so the key
/// order can follow CloudTrail while the draws follow the logic.
struct Record {
    call: &'static Call,
    time: DateTime<Utc>,
    account: String,
    region: String,
    identity: Identity,
    source_ip: String,
    user_agent: String,
    error: Option<(String, String)>,
    request_parameters: Option<String>,
    response_elements: Option<String>,
    additional_event_data: Option<String>,
    request_id: String,
    event_id: String,
    read_only: bool,
    resources: Vec<Resource>,
    event_type: &'static str,
    tls_host: Option<String>,
}

struct Resource {
    account: Option<String>,
    kind: &'static str,
    arn: String,
}

impl Resource {
    fn new(account: Option<&str>, kind: &'static str, arn: String) -> Self {
        Self {
            account: account.map(str::to_owned),
            kind,
            arn,
        }
    }
}

impl Record {
    fn draw(g: &mut Generator, time: DateTime<Utc>) -> Self {
        let call = g.pick_call();
        let account = g.rng.pick(&g.accounts).clone();
        let region = if GLOBAL_SOURCES.contains(&call.source) {
            GLOBAL_REGION.to_owned()
        } else {
            g.rng.pick(&g.regions).clone()
        };
        let r = &mut g.rng;
        let identity = draw_identity(r, call, time);
        let service = call.source.split('.').next().unwrap_or(call.source);
        let (source_ip, user_agent) = match &identity {
            Identity::Service { invoked_by } => {
                ((*invoked_by).to_owned(), (*invoked_by).to_owned())
            }
            _ => {
                let ip = format!(
                    "{}.{}.{}.{}",
                    r.pick(FIRST_OCTETS),
                    r.below(256),
                    r.below(256),
                    1 + r.below(254)
                );
                let agent = if call.name == "ConsoleLogin" {
                    BROWSER_AGENT.to_owned()
                } else {
                    r.pick(AGENTS)
                        .replace("{svc}", service)
                        .replace("{op}", &kebab_case(call.name))
                };
                (ip, agent)
            }
        };
        let request_id = r.uuid();
        let event_id = r.uuid();
        let tls_host = match identity {
            Identity::Service { .. } => None,
            _ if call.name == "ConsoleLogin" => {
                r.chance(900).then(|| "signin.aws.amazon.com".to_owned())
            }
            _ => r
                .chance(400)
                .then(|| format!("{service}.{region}.amazonaws.com")),
        };
        let mut record = Record {
            call,
            time,
            account,
            region,
            identity,
            source_ip,
            user_agent,
            error: None,
            request_parameters: None,
            response_elements: None,
            additional_event_data: None,
            request_id,
            event_id,
            read_only: call.read_only,
            resources: Vec::new(),
            event_type: "AwsApiCall",
            tls_host,
        };
        record.draw_details(r);
        if record.error.is_none() && call.name != "ConsoleLogin" && r.chance(40) {
            record.error = Some(draw_error(r, call, &record.identity_arn()));
            record.response_elements = None;
        }
        if matches!(record.identity, Identity::Service { .. }) && r.chance(500) {
            record.event_type = "AwsServiceEvent";
        }
        record
    }

    /// Request parameters, response elements, additional data and resources.
    fn draw_details(&mut self, r: &mut SplitMix64) {
        let (acct, region) = (self.account.clone(), self.region.clone());
        let call = self.call;
        match (call.source, call.name) {
            (SIGNIN, _) => {
                self.event_type = "AwsConsoleSignIn";
                self.read_only = false;
                let ok = r.chance(900);
                self.response_elements = Some(object(|o| {
                    o.string("ConsoleLogin", if ok { "Success" } else { "Failure" });
                }));
                if !ok {
                    self.error = Some((String::new(), "Failed authentication".to_owned()));
                }
                let mfa = r.chance(700);
                self.additional_event_data = Some(object(|o| {
                    o.string("LoginTo", "https://console.aws.amazon.com/console/home")
                        .string("MobileVersion", "No")
                        .string("MFAUsed", if mfa { "Yes" } else { "No" });
                }));
            }
            (S3, name) if call.data => {
                let bucket = *r.pick(BUCKETS);
                let key = format!("{}/{:06}.csv", r.pick(KEY_PREFIXES), r.below(1_000_000));
                let bytes = 100 + r.below(10_000_000);
                let (bytes_in, bytes_out) = match name {
                    "GetObject" => (0, bytes),
                    "PutObject" => (bytes, 0),
                    _ => (0, 0),
                };
                self.request_parameters = Some(object(|o| {
                    o.string("bucketName", bucket)
                        .string("Host", &format!("{bucket}.s3.{region}.amazonaws.com"))
                        .string("key", &key);
                }));
                let extended_id = r.string_from(ID_ALPHABET, 24);
                self.additional_event_data = Some(object(|o| {
                    o.string("SignatureVersion", "SigV4")
                        .string("CipherSuite", "TLS_AES_128_GCM_SHA256")
                        .number("bytesTransferredIn", bytes_in)
                        .string("AuthenticationMethod", "AuthHeader")
                        .string("x-amz-id-2", &extended_id)
                        .number("bytesTransferredOut", bytes_out);
                }));
                self.resources = vec![
                    Resource::new(
                        None,
                        "AWS::S3::Object",
                        format!("arn:aws:s3:::{bucket}/{key}"),
                    ),
                    Resource::new(
                        Some(&acct),
                        "AWS::S3::Bucket",
                        format!("arn:aws:s3:::{bucket}"),
                    ),
                ];
            }
            (S3, "ListBuckets") => {
                self.request_parameters = Some(object(|o| {
                    o.string("Host", &format!("s3.{region}.amazonaws.com"));
                }));
            }
            (S3, name) => {
                let bucket = *r.pick(BUCKETS);
                let sub = if name.contains("Acl") {
                    "acl"
                } else {
                    "policy"
                };
                self.request_parameters = Some(object(|o| {
                    o.string("bucketName", bucket)
                        .string("Host", &format!("{bucket}.s3.{region}.amazonaws.com"))
                        .string(sub, "");
                }));
                self.resources = vec![Resource::new(
                    Some(&acct),
                    "AWS::S3::Bucket",
                    format!("arn:aws:s3:::{bucket}"),
                )];
            }
            (KMS, name) => {
                let key_arn = format!("arn:aws:kms:{region}:{acct}:key/{}", r.uuid());
                self.request_parameters = Some(object(|o| {
                    o.string("keyId", &key_arn);
                    match name {
                        "ScheduleKeyDeletion" => {
                            o.number("pendingWindowInDays", 7);
                        }
                        "DisableKey" => {}
                        "GenerateDataKey" => {
                            o.string("keySpec", "AES_256");
                        }
                        _ => {
                            o.string("encryptionAlgorithm", "SYMMETRIC_DEFAULT");
                        }
                    }
                }));
                self.resources = vec![Resource::new(Some(&acct), "AWS::KMS::Key", key_arn)];
            }
            (LAMBDA, _) => {
                let function = format!(
                    "arn:aws:lambda:{region}:{acct}:function:{}",
                    r.pick(FUNCTIONS)
                );
                self.request_parameters = Some(object(|o| {
                    o.string("functionName", &function);
                }));
                self.additional_event_data = Some(object(|o| {
                    o.string("functionVersion", &format!("{function}:$LATEST"));
                }));
                self.resources = vec![Resource::new(
                    Some(&acct),
                    "AWS::Lambda::Function",
                    function,
                )];
            }
            (DYNAMODB, _) => {
                let table = *r.pick(TABLES);
                let id = r.below(1_000_000_000).to_string();
                self.request_parameters = Some(object(|o| {
                    o.string("tableName", table).object("key", |k| {
                        k.object("id", |v| {
                            v.string("S", &id);
                        });
                    });
                }));
                self.resources = vec![Resource::new(
                    Some(&acct),
                    "AWS::DynamoDB::Table",
                    format!("arn:aws:dynamodb:{region}:{acct}:table/{table}"),
                )];
            }
            (STS, "AssumeRole") => {
                let role = *r.pick(ROLES);
                let session = *r.pick(USERS);
                let role_arn = format!("arn:aws:iam::{acct}:role/{role}");
                self.request_parameters = Some(object(|o| {
                    o.string("roleArn", &role_arn)
                        .string("roleSessionName", session)
                        .number("durationSeconds", 3600);
                }));
                let access_key = format!("ASIA{}", r.string_from(ID_ALPHABET, 16));
                let expiration = self.time + chrono::Duration::hours(1);
                self.response_elements = Some(object(|o| {
                    o.object("credentials", |c| {
                        c.string("accessKeyId", &access_key)
                            .string("expiration", &console_time(expiration));
                    })
                    .object("assumedRoleUser", |u| {
                        u.string(
                            "assumedRoleId",
                            &format!("{}:{session}", role_id(&acct, role)),
                        )
                        .string(
                            "arn",
                            &format!("arn:aws:sts::{acct}:assumed-role/{role}/{session}"),
                        );
                    });
                }));
                self.resources = vec![Resource::new(Some(&acct), "AWS::IAM::Role", role_arn)];
            }
            (EC2, "DescribeInstances") => {
                self.request_parameters = Some(object(|o| {
                    o.object("instancesSet", |_| {}).object("filterSet", |_| {});
                }));
            }
            (EC2, "DescribeSecurityGroups") => {
                self.request_parameters = Some(object(|o| {
                    o.object("securityGroupSet", |_| {})
                        .object("filterSet", |_| {});
                }));
            }
            (EC2, "RunInstances") => {
                let ami = format!("ami-{}", r.string_from(HEX, 17));
                let instance = format!("i-{}", r.string_from(HEX, 17));
                let reservation = format!("r-{}", r.string_from(HEX, 17));
                let instance_type = *r.pick(INSTANCE_TYPES);
                self.request_parameters = Some(object(|o| {
                    o.object("instancesSet", |s| {
                        s.array_of_objects("items", &[()], |i, _| {
                            i.string("imageId", &ami)
                                .number("minCount", 1)
                                .number("maxCount", 1);
                        });
                    })
                    .string("instanceType", instance_type);
                }));
                self.response_elements = Some(object(|o| {
                    o.string("requestId", &self.request_id)
                        .string("reservationId", &reservation)
                        .string("ownerId", &acct)
                        .object("instancesSet", |s| {
                            s.array_of_objects("items", &[()], |i, _| {
                                i.string("instanceId", &instance)
                                    .string("imageId", &ami)
                                    .string("instanceType", instance_type);
                            });
                        });
                }));
            }
            (EC2, "TerminateInstances") => {
                let instance = format!("i-{}", r.string_from(HEX, 17));
                self.request_parameters = Some(object(|o| {
                    o.object("instancesSet", |s| {
                        s.array_of_objects("items", &[()], |i, _| {
                            i.string("instanceId", &instance);
                        });
                    });
                }));
            }
            (EC2, name) if name.contains("SecurityGroup") => {
                let group = format!("sg-{}", r.string_from(HEX, 17));
                let vpc = format!("vpc-{}", r.string_from(HEX, 17));
                self.request_parameters = Some(object(|o| match name {
                    "CreateSecurityGroup" => {
                        o.string("groupName", "ssh-anywhere")
                            .string("groupDescription", "temporary access")
                            .string("vpcId", &vpc);
                    }
                    "DeleteSecurityGroup" => {
                        o.string("groupId", &group);
                    }
                    _ => {
                        o.string("groupId", &group).object("ipPermissions", |p| {
                            p.array_of_objects("items", &[()], |i, _| {
                                i.string("ipProtocol", "tcp")
                                    .number("fromPort", 22)
                                    .number("toPort", 22)
                                    .object("ipRanges", |ranges| {
                                        ranges.array_of_objects("items", &[()], |c, _| {
                                            c.string("cidrIp", "0.0.0.0/0");
                                        });
                                    });
                            });
                        });
                    }
                }));
                self.response_elements = Some(object(|o| {
                    o.string("requestId", &self.request_id)
                        .boolean("_return", true);
                    if name == "CreateSecurityGroup" {
                        o.string("groupId", &group);
                    }
                }));
            }
            (EC2, _) if !call.read_only => {
                let vpc = format!("vpc-{}", r.string_from(HEX, 17));
                self.request_parameters = Some(object(|o| {
                    o.string("vpcId", &vpc);
                }));
            }
            (IAM, "GetUser") => {
                let user = *r.pick(USERS);
                self.request_parameters = Some(object(|o| {
                    o.string("userName", user);
                }));
            }
            (IAM, name) if !call.read_only => {
                let policy = *r.pick(POLICIES);
                let policy_arn = format!("arn:aws:iam::{acct}:policy/{policy}");
                let role = *r.pick(ROLES);
                let user = *r.pick(USERS);
                let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
                self.request_parameters = Some(object(|o| match name {
                    "AttachRolePolicy" | "DetachRolePolicy" => {
                        o.string("roleName", role).string("policyArn", &policy_arn);
                    }
                    "AttachUserPolicy" => {
                        o.string("userName", user).string("policyArn", &policy_arn);
                    }
                    "PutUserPolicy" => {
                        o.string("userName", user)
                            .string("policyName", policy)
                            .string("policyDocument", document);
                    }
                    "CreatePolicy" => {
                        o.string("policyName", policy)
                            .string("policyDocument", document);
                    }
                    "DeletePolicy" => {
                        o.string("policyArn", &policy_arn);
                    }
                    _ => {
                        o.string("userName", user);
                    }
                }));
                if name == "CreateAccessKey" {
                    let key_id = access_key_id(&acct, user);
                    let created = console_time(self.time);
                    self.response_elements = Some(object(|o| {
                        o.object("accessKey", |k| {
                            k.string("userName", user)
                                .string("accessKeyId", &key_id)
                                .string("status", "Active")
                                .string("createDate", &created);
                        });
                    }));
                }
            }
            (CLOUDTRAIL, name) if name != "LookupEvents" => {
                self.request_parameters = Some(object(|o| {
                    o.string(
                        "name",
                        &format!("arn:aws:cloudtrail:us-east-1:{acct}:trail/org-audit-trail"),
                    );
                }));
            }
            (CONFIG, _) => {
                self.request_parameters = Some(object(|o| {
                    o.string("configurationRecorderName", "default");
                }));
            }
            _ => {}
        }
    }

    fn identity_arn(&self) -> String {
        let acct = &self.account;
        match &self.identity {
            Identity::Root => format!("arn:aws:iam::{acct}:root"),
            Identity::IamUser { user } => format!("arn:aws:iam::{acct}:user/{user}"),
            Identity::AssumedRole { role, session, .. } => {
                format!("arn:aws:sts::{acct}:assumed-role/{role}/{session}")
            }
            Identity::Service { invoked_by } => (*invoked_by).to_owned(),
        }
    }

    fn write(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.string("eventVersion", if self.call.data { "1.10" } else { "1.09" });
        w.object("userIdentity", |o| self.write_identity(o));
        w.string("eventTime", &iso_seconds(self.time))
            .string("eventSource", self.call.source)
            .string("eventName", self.call.name)
            .string("awsRegion", &self.region)
            .string("sourceIPAddress", &self.source_ip)
            .string("userAgent", &self.user_agent);
        if let Some((code, message)) = &self.error {
            // A failed console login carries only the message, as CloudTrail writes it.
            if !code.is_empty() {
                w.string("errorCode", code);
            }
            w.string("errorMessage", message);
        }
        raw_or_null(
            &mut w,
            "requestParameters",
            self.request_parameters.as_deref(),
        );
        raw_or_null(
            &mut w,
            "responseElements",
            self.response_elements.as_deref(),
        );
        if let Some(data) = &self.additional_event_data {
            w.raw("additionalEventData", data);
        }
        w.string("requestID", &self.request_id)
            .string("eventID", &self.event_id)
            .boolean("readOnly", self.read_only);
        if !self.resources.is_empty() {
            w.array_of_objects("resources", &self.resources, |o, res| {
                if let Some(account) = &res.account {
                    o.string("accountId", account);
                }
                o.string("type", res.kind).string("ARN", &res.arn);
            });
        }
        w.string("eventType", self.event_type)
            .boolean("managementEvent", !self.call.data)
            .string("recipientAccountId", &self.account)
            .string(
                "eventCategory",
                if self.call.data { "Data" } else { "Management" },
            );
        if let Some(host) = &self.tls_host {
            w.object("tlsDetails", |t| {
                t.string("tlsVersion", "TLSv1.3")
                    .string("cipherSuite", "TLS_AES_128_GCM_SHA256")
                    .string("clientProvidedHostHeader", host);
            });
        }
        if self.call.name != "ConsoleLogin" && self.user_agent == "console.amazonaws.com" {
            w.string("sessionCredentialFromConsole", "true");
        }
        w.finish();
    }

    fn write_identity(&self, o: &mut ObjectWriter<'_>) {
        let acct = self.account.as_str();
        match &self.identity {
            Identity::Root => {
                o.string("type", "Root")
                    .string("principalId", acct)
                    .string("arn", &format!("arn:aws:iam::{acct}:root"))
                    .string("accountId", acct)
                    .string("accessKeyId", "");
            }
            Identity::IamUser { user } => {
                o.string("type", "IAMUser")
                    .string("principalId", &stable_id("AIDA", &[acct, user], 17))
                    .string("arn", &format!("arn:aws:iam::{acct}:user/{user}"))
                    .string("accountId", acct);
                if self.call.name != "ConsoleLogin" {
                    o.string("accessKeyId", &access_key_id(acct, user));
                }
                o.string("userName", user);
            }
            Identity::AssumedRole {
                role,
                session,
                mfa,
                created,
            } => {
                let role_id = role_id(acct, role);
                o.string("type", "AssumedRole")
                    .string("principalId", &format!("{role_id}:{session}"))
                    .string(
                        "arn",
                        &format!("arn:aws:sts::{acct}:assumed-role/{role}/{session}"),
                    )
                    .string("accountId", acct)
                    .string(
                        "accessKeyId",
                        &stable_id("ASIA", &[acct, role, session, &iso_seconds(*created)], 16),
                    )
                    .object("sessionContext", |c| {
                        c.object("sessionIssuer", |i| {
                            i.string("type", "Role")
                                .string("principalId", &role_id)
                                .string("arn", &format!("arn:aws:iam::{acct}:role/{role}"))
                                .string("accountId", acct)
                                .string("userName", role);
                        })
                        .object("attributes", |a| {
                            a.string("creationDate", &iso_seconds(*created))
                                .string("mfaAuthenticated", if *mfa { "true" } else { "false" });
                        });
                    });
            }
            Identity::Service { invoked_by } => {
                o.string("type", "AWSService")
                    .string("invokedBy", invoked_by);
            }
        }
    }
}

fn draw_identity(r: &mut SplitMix64, call: &Call, time: DateTime<Utc>) -> Identity {
    let p = r.below(1000);
    if call.source == SIGNIN || p < 220 {
        if r.chance(30) {
            return Identity::Root;
        }
        let user = *r.pick(USERS);
        return Identity::IamUser { user };
    }
    // Services act on data and keys, not on IAM users or audit configuration:
    // those changes always come from a role.
    let service_may_call = call.read_only || !matches!(call.source, IAM | CLOUDTRAIL | CONFIG);
    if p < 900 || !service_may_call {
        let role = *r.pick(ROLES);
        let pool = r.below((USERS.len() + NON_USER_SESSIONS.len()) as u64) as usize;
        let session = USERS
            .get(pool)
            .copied()
            .unwrap_or_else(|| NON_USER_SESSIONS[pool - USERS.len()]);
        let mfa = r.chance(300);
        // Sessions last up to an hour; the session began a little before the call.
        let age = chrono::Duration::seconds(r.below(3600) as i64);
        return Identity::AssumedRole {
            role,
            session,
            mfa,
            created: time - age,
        };
    }
    let invoked_by = *r.pick(SERVICES);
    Identity::Service { invoked_by }
}

/// An error a failing call of this service plausibly returns.
fn draw_error(r: &mut SplitMix64, call: &Call, caller_arn: &str) -> (String, String) {
    let action = format!(
        "{}:{}",
        call.source.split('.').next().unwrap_or(""),
        call.name
    );
    match r.below(10) {
        0..=5 => match call.source {
            EC2 => (
                "Client.UnauthorizedOperation".to_owned(),
                "You are not authorized to perform this operation.".to_owned(),
            ),
            S3 => ("AccessDenied".to_owned(), "Access Denied".to_owned()),
            KMS | LAMBDA | DYNAMODB | ORGANIZATIONS => (
                "AccessDeniedException".to_owned(),
                format!(
                    "User: {caller_arn} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
                ),
            ),
            _ => (
                "AccessDenied".to_owned(),
                format!(
                    "User: {caller_arn} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
                ),
            ),
        },
        6..=7 => match call.source {
            EC2 => (
                "Client.RequestLimitExceeded".to_owned(),
                "Request limit exceeded.".to_owned(),
            ),
            S3 => (
                "SlowDown".to_owned(),
                "Please reduce your request rate.".to_owned(),
            ),
            _ => ("ThrottlingException".to_owned(), "Rate exceeded".to_owned()),
        },
        _ => match call.source {
            IAM => (
                "NoSuchEntityException".to_owned(),
                format!("The user with name {} cannot be found.", r.pick(USERS)),
            ),
            EC2 => (
                "Client.InvalidGroup.NotFound".to_owned(),
                format!(
                    "The security group 'sg-{}' does not exist",
                    r.string_from(HEX, 17)
                ),
            ),
            S3 => (
                "NoSuchKey".to_owned(),
                "The specified key does not exist.".to_owned(),
            ),
            KMS => (
                "NotFoundException".to_owned(),
                "Key does not exist".to_owned(),
            ),
            CLOUDTRAIL => (
                "TrailNotFoundException".to_owned(),
                "Unknown trail: org-audit-trail for the user".to_owned(),
            ),
            _ => (
                "ResourceNotFoundException".to_owned(),
                "Requested resource not found".to_owned(),
            ),
        },
    }
}

/// Writes a small object into a fresh string.
fn object(body: impl FnOnce(&mut ObjectWriter<'_>)) -> String {
    let mut out = String::new();
    let mut w = ObjectWriter::new(&mut out);
    body(&mut w);
    w.finish();
    out
}

fn raw_or_null(w: &mut ObjectWriter<'_>, key: &str, json: Option<&str>) {
    match json {
        Some(json) => w.raw(key, json),
        None => w.null(key),
    };
}

/// `2026-11-01T00:00:00Z`: CloudTrail's eventTime form.
fn iso_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `Nov 1, 2026, 1:00:00 AM`: the form some services use inside responseElements.
fn console_time(t: DateTime<Utc>) -> String {
    t.format("%b %-d, %Y, %-I:%M:%S %p").to_string()
}

/// `DescribeInstances` -> `describe-instances`, as the AWS CLI names commands.
fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An ID that is the same every time for the same principal (as AWS's are),
/// derived by hashing rather than drawn, so it costs no PRNG output.
fn stable_id(prefix: &str, parts: &[&str], len: usize) -> String {
    let mut r = SplitMix64::new(hash_strings(parts));
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.push_str(&r.string_from(ID_ALPHABET, len));
    id
}

fn role_id(account: &str, role: &str) -> String {
    stable_id("AROA", &[account, role], 17)
}

fn access_key_id(account: &str, user: &str) -> String {
    stable_id("AKIA", &[account, user, "key"], 16)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use serde_json::Value;

    use super::*;

    fn fixed_options() -> GeneratorOptions {
        GeneratorOptions::default()
    }

    fn records(seed: u64, n: usize) -> Vec<String> {
        Generator::new(seed, fixed_options()).take(n).collect()
    }

    #[test]
    fn test_generator_same_seed_same_bytes() {
        assert_eq!(records(42, 500), records(42, 500));
    }

    #[test]
    fn test_generator_different_seed_different_bytes() {
        let (a, b) = (records(1, 50), records(2, 50));
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }

    /// Pins the exact output: a change here changes every benchmark's data,
    /// so it must be deliberate (update the digest when it is).
    #[test]
    fn test_generator_output_is_pinned() {
        let all = records(1, 1000).join("\n");
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(all.as_bytes()));
        assert_eq!(digest, PINNED_DIGEST, "first record: {}", records(1, 1)[0]);
    }

    const PINNED_DIGEST: &str = "ae15a500f6ef927e3c3f225cf99f90a2b3d90eec087072ad8940b0c105186060";

    #[test]
    fn test_generator_records_are_valid_cloudtrail() {
        let required = [
            "eventVersion",
            "userIdentity",
            "eventTime",
            "eventSource",
            "eventName",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "requestParameters",
            "responseElements",
            "requestID",
            "eventID",
            "readOnly",
            "eventType",
            "managementEvent",
            "recipientAccountId",
            "eventCategory",
        ];
        let mut ids = HashSet::new();
        let mut previous_time = String::new();
        let defaults = cairn_model::IngestDefaults {
            account_id: "123456789012",
            region: "us-east-1",
        };
        for text in records(9, 5000) {
            let v: Value = serde_json::from_str(&text).unwrap();
            for key in required {
                assert!(v.get(key).is_some(), "{key} missing in {text}");
            }
            let time = v["eventTime"].as_str().unwrap();
            assert!(
                chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
                "{time}"
            );
            assert!(time >= previous_time.as_str(), "time went backwards");
            previous_time = time.to_owned();
            assert!(
                ids.insert(v["eventID"].as_str().unwrap().to_owned()),
                "duplicate eventID"
            );
            uuid::Uuid::parse_str(v["requestID"].as_str().unwrap()).unwrap();
            assert!(DEFAULT_ACCOUNTS.contains(&v["recipientAccountId"].as_str().unwrap()));
            let data = v["eventCategory"] == "Data";
            assert_eq!(v["managementEvent"], !data);
            if data {
                let resources = v["resources"]
                    .as_array()
                    .expect("data events name their resources");
                let kind = resources[0]["type"].as_str().unwrap();
                let arn = resources[0]["ARN"].as_str().unwrap();
                match kind {
                    "AWS::S3::Object" => {
                        let key = v["requestParameters"]["key"].as_str().unwrap();
                        let bucket = v["requestParameters"]["bucketName"].as_str().unwrap();
                        assert_eq!(arn, format!("arn:aws:s3:::{bucket}/{key}"));
                    }
                    "AWS::Lambda::Function" => assert!(arn.starts_with("arn:aws:lambda:")),
                    "AWS::DynamoDB::Table" => assert!(arn.starts_with("arn:aws:dynamodb:")),
                    other => panic!("unexpected data resource {other}"),
                }
            }
            if GLOBAL_SOURCES.contains(&v["eventSource"].as_str().unwrap()) {
                assert_eq!(v["awsRegion"], "us-east-1");
            }
            if v.get("errorCode").is_some() {
                assert!(v["responseElements"].is_null());
            }
            // The server's own validation accepts it and keeps it byte for byte.
            let normalized = cairn_model::record::normalize_record(&text, &defaults).unwrap();
            assert_eq!(normalized.json, text);
        }
    }

    #[test]
    fn test_generator_mix_is_realistic() {
        let mut by_category = BTreeMap::new();
        let mut by_identity = BTreeMap::new();
        let mut errors = 0;
        let mut console_logins = 0;
        let n = 20_000;
        for text in records(3, n) {
            let v: Value = serde_json::from_str(&text).unwrap();
            *by_category
                .entry(v["eventCategory"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
            *by_identity
                .entry(v["userIdentity"]["type"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
            if v.get("errorCode").is_some() {
                errors += 1;
            }
            if v["eventName"] == "ConsoleLogin" {
                console_logins += 1;
                assert_eq!(v["eventType"], "AwsConsoleSignIn");
            }
        }
        let share = |count: i32| f64::from(count) / n as f64;
        // Data calls carry 160 of the 661 weight units: about 24 %.
        assert!(
            (0.21..0.27).contains(&share(by_category["Data"])),
            "{by_category:?}"
        );
        assert!((0.02..0.06).contains(&share(errors)), "errors {errors}");
        assert!(console_logins > 100, "{console_logins}");
        for kind in ["Root", "IAMUser", "AssumedRole", "AWSService"] {
            assert!(by_identity.contains_key(kind), "{by_identity:?}");
        }
        assert!(by_identity["AssumedRole"] > by_identity["IAMUser"]);
    }

    #[test]
    fn test_generator_honours_accounts_regions_and_time_base() {
        let start = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        let options = GeneratorOptions {
            accounts: vec!["999988887777".to_owned()],
            regions: vec!["eu-north-1".to_owned()],
            start_time: start,
            events_per_second: 10.0,
        };
        let mut g = Generator::new(5, options);
        let all: Vec<Value> = (0..300)
            .map(|_| serde_json::from_str(&g.next_record()).unwrap())
            .collect();
        assert_eq!(g.records_generated(), 300);
        for v in &all {
            assert_eq!(v["recipientAccountId"], "999988887777");
            let region = v["awsRegion"].as_str().unwrap();
            assert!(
                region == "eu-north-1" || region == GLOBAL_REGION,
                "{region}"
            );
        }
        let first = all[0]["eventTime"].as_str().unwrap();
        let last = all[299]["eventTime"].as_str().unwrap();
        assert!(first.starts_with("2030-01-02T03:0"), "{first}");
        // 300 events at 10 per second: about 30 simulated seconds.
        let last = chrono::NaiveDateTime::parse_from_str(last, "%Y-%m-%dT%H:%M:%SZ")
            .unwrap()
            .and_utc();
        let span = (last - start).num_seconds();
        assert!((20..=40).contains(&span), "{span}");
    }

    #[test]
    fn test_generator_empty_options_fall_back_to_defaults() {
        let options = GeneratorOptions {
            accounts: vec![],
            regions: vec![],
            events_per_second: f64::NAN,
            ..GeneratorOptions::default()
        };
        let a: Vec<String> = Generator::new(8, options).take(20).collect();
        assert_eq!(a, records(8, 20));
    }

    #[test]
    fn test_kebab_case_and_stable_ids() {
        assert_eq!(kebab_case("DescribeInstances"), "describe-instances");
        assert_eq!(kebab_case("Invoke"), "invoke");
        assert_eq!(
            role_id("123456789012", "Admin"),
            role_id("123456789012", "Admin")
        );
        assert_ne!(
            role_id("123456789012", "Admin"),
            role_id("123456789012", "Deploy")
        );
        assert_eq!(role_id("1", "Admin").len(), 21);
    }
}
