//! What every handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_meta::Metastore;
use cairn_pipeline::Pipeline;
use cairn_store::BucketStore;

/// The organization the server belongs to, as configured.
#[derive(Debug, Clone)]
pub struct OrganizationSettings {
    /// `o-...`.
    pub id: String,
    /// The management account.
    pub management_account: String,
    /// Member accounts (the management account is also a member).
    pub member_accounts: Vec<String>,
}

impl OrganizationSettings {
    /// Every account of the organization, management first.
    pub fn all_accounts(&self) -> Vec<String> {
        let mut all = vec![self.management_account.clone()];
        for a in &self.member_accounts {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }
}

/// The identity settings of this server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The account this server is (trails, buckets and root credentials belong to it).
    pub account_id: String,
    /// The default region (a request's region is its SigV4 scope's).
    pub region: String,
    /// The organization, if one is configured.
    pub organization: Option<OrganizationSettings>,
}

/// A secret access key; never printed.
#[derive(Clone)]
pub struct SecretKey(pub String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A principal that may sign requests.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Its account.
    pub account_id: String,
    /// Its ARN (`arn:aws:iam::<account>:root` for the root credentials).
    pub arn: String,
    /// Its secret key.
    pub secret: SecretKey,
}

/// Access key ID → principal.
#[derive(Debug, Clone, Default)]
pub struct Principals(pub HashMap<String, Principal>);

impl Principals {
    /// The principal behind an access key ID.
    pub fn get(&self, access_key_id: &str) -> Option<&Principal> {
        self.0.get(access_key_id)
    }
}

/// Shared state of the HTTP edge.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Identity settings.
    pub settings: Arc<Settings>,
    /// Control-plane state.
    pub meta: Arc<Metastore>,
    /// CloudWatch Logs groups, streams, events, metric filters and metrics.
    pub monitor: Arc<cairn_monitor::Monitor>,
    /// Alarm evaluation and notification delivery.
    pub monitoring: Arc<crate::monitoring::Monitoring>,
    /// The event history (LookupEvents), when kept (`[history] enabled`).
    pub history: Option<Arc<cairn_history::History>>,
    /// Athena's query executions, when the binary provided a SQL engine.
    pub athena: Option<Arc<crate::services::athena::Athena>>,
    /// Buckets.
    pub store: BucketStore,
    /// The data dir (event data stores live under `lake/`).
    pub data_dir: Arc<std::path::PathBuf>,
    /// The data path.
    pub pipeline: Arc<Pipeline>,
    /// Who may sign requests.
    pub principals: Arc<Principals>,
    /// Connection and request-body bounds.
    pub limits: Arc<crate::listener::ConnectionLimits>,
    /// Open and refused connections.
    pub connections: Arc<crate::listener::ConnectionCounters>,
    /// Request-body bytes that may still be buffered across all connections.
    pub body_budget: Arc<tokio::sync::Semaphore>,
}

/// Who made a verified request, and for which service.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The SigV4 scope's service name.
    pub service: String,
    /// The request's region: its SigV4 scope's (the default when it names none).
    pub region: String,
    /// The access key that signed.
    pub access_key_id: String,
    /// The caller's account.
    pub account_id: String,
    /// The caller's ARN.
    pub principal_arn: String,
    /// This request's ID (x-amzn-RequestId / x-amz-request-id).
    pub request_id: String,
}
