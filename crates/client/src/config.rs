//! Finding the server and the credentials, the way the AWS CLI does.
//!
//! Precedence, first match wins:
//!
//! * **endpoint**: the explicit `--endpoint-url`; `AWS_ENDPOINT_URL_CLOUDTRAIL_DATA`;
//!   `AWS_ENDPOINT_URL`; the profile's `endpoint_url` in the config file;
//!   [`DEFAULT_ENDPOINT`].
//! * **credentials**: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//!   the profile (`--profile`, else `AWS_PROFILE`, else `default`) in the shared
//!   credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`),
//!   then in the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`); last, the
//!   file a local server writes, `<data-dir>/credentials`, profile [`DATA_DIR_PROFILE`].
//!   The data-dir fallback is skipped when a profile other than `cairn` was asked
//!   for by name: the AWS CLI fails on a missing named profile, and so does this.
//! * **region**: `AWS_REGION`; `AWS_DEFAULT_REGION`; the profile's `region` in the
//!   config file (`[profile NAME]`, or `[default]`); [`DEFAULT_REGION`].
//!
//! Empty environment variables count as unset. The environment is read through
//! a closure ([`resolve_with_env`]) so tests never touch the process environment.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ini::Ini;

/// The endpoint of a local `cairn serve` with default settings.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7447";
/// The region used when nothing names one (also Cairn's default region).
pub const DEFAULT_REGION: &str = "us-east-1";
/// The profile in the credentials file the server writes into its data dir.
pub const DATA_DIR_PROFILE: &str = "cairn";
/// The server's default data dir, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./cairn-data";

/// Environment variables read here (declared once; see the module doc for their order).
pub mod env_vars {
    /// Endpoint for the CloudTrail Data service only.
    pub const ENDPOINT_URL_CLOUDTRAIL_DATA: &str = "AWS_ENDPOINT_URL_CLOUDTRAIL_DATA";
    /// Endpoint for every service.
    pub const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    /// Access key ID.
    pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    /// Secret access key.
    pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    /// Session token of temporary credentials.
    pub const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    /// Profile name.
    pub const PROFILE: &str = "AWS_PROFILE";
    /// Path of the shared credentials file.
    pub const SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
    /// Path of the shared config file.
    pub const CONFIG_FILE: &str = "AWS_CONFIG_FILE";
    /// Region.
    pub const REGION: &str = "AWS_REGION";
    /// Region, the older name.
    pub const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
    /// Home directory (Unix).
    pub const HOME: &str = "HOME";
    /// Home directory (Windows).
    pub const USERPROFILE: &str = "USERPROFILE";
}

/// A secret string: usable through [`Secret::expose`], never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the credentials were found (for the binary to tell the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A profile of a shared credentials or config file.
    Profile {
        /// The profile name.
        profile: String,
        /// The file.
        path: PathBuf,
    },
    /// The credentials file of a local server's data dir (profile `cairn`).
    DataDir {
        /// The file.
        path: PathBuf,
    },
}

/// Everything needed to talk to a Cairn server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:7447` (no trailing slash).
    pub endpoint: String,
    /// Region for the SigV4 credential scope.
    pub region: String,
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key (redacted in `Debug`).
    pub secret_access_key: Secret,
    /// Session token of temporary credentials (redacted in `Debug`).
    pub session_token: Option<Secret>,
    /// Where the credentials came from.
    pub credential_source: CredentialSource,
}

/// Resolves endpoint, credentials and region from the process environment and files.
///
/// `data_dir_hint` is the server's data dir (`--data-dir`, else [`DEFAULT_DATA_DIR`]),
/// whose `credentials` file is the last resort for credentials.
pub fn resolve(
    explicit_endpoint: Option<&str>,
    explicit_profile: Option<&str>,
    data_dir_hint: &Path,
) -> Result<ClientConfig> {
    resolve_with_env(
        explicit_endpoint,
        explicit_profile,
        data_dir_hint,
        &|name| std::env::var(name).ok(),
    )
}

/// [`resolve`] with the environment given as a lookup function.
pub fn resolve_with_env(
    explicit_endpoint: Option<&str>,
    explicit_profile: Option<&str>,
    data_dir_hint: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientConfig> {
    // Empty variables are treated as unset, as the AWS CLI mostly does.
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let explicit_profile = explicit_profile.filter(|p| !p.is_empty());
    let profile_named = explicit_profile.is_some() || var(env_vars::PROFILE).is_some();
    let profile = explicit_profile
        .map(str::to_owned)
        .or_else(|| var(env_vars::PROFILE))
        .unwrap_or_else(|| "default".to_owned());

    let home = var(env_vars::HOME)
        .or_else(|| var(env_vars::USERPROFILE))
        .map(PathBuf::from);
    let credentials_path =
        shared_file_path(var(env_vars::SHARED_CREDENTIALS_FILE), &home, "credentials");
    let config_path = shared_file_path(var(env_vars::CONFIG_FILE), &home, "config");
    let config_file = match &config_path {
        Some(path) => read_ini(path)?,
        None => None,
    };
    let config_section = config_file
        .as_ref()
        .and_then(|ini| config_section_name(ini, &profile));
    let from_config = |key: &str| {
        let ini = config_file.as_ref()?;
        ini.get(config_section.as_deref()?, key).map(str::to_owned)
    };

    let endpoint_text = explicit_endpoint
        .map(str::to_owned)
        .or_else(|| var(env_vars::ENDPOINT_URL_CLOUDTRAIL_DATA))
        .or_else(|| var(env_vars::ENDPOINT_URL))
        .or_else(|| from_config("endpoint_url"))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let endpoint = normalize_endpoint(&endpoint_text)?;

    let region = var(env_vars::REGION)
        .or_else(|| var(env_vars::DEFAULT_REGION))
        .or_else(|| from_config("region"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());

    let found = find_credentials(
        &var,
        &profile,
        profile_named,
        credentials_path.as_deref(),
        config_path
            .as_deref()
            .zip(config_file.as_ref())
            .zip(config_section.as_deref()),
        data_dir_hint,
    )?;
    Ok(ClientConfig {
        endpoint,
        region,
        access_key_id: found.access_key_id,
        secret_access_key: found.secret_access_key,
        session_token: found.session_token,
        credential_source: found.source,
    })
}

struct FoundCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    source: CredentialSource,
}

fn find_credentials(
    var: &dyn Fn(&str) -> Option<String>,
    profile: &str,
    profile_named: bool,
    credentials_path: Option<&Path>,
    config: Option<((&Path, &Ini), &str)>,
    data_dir: &Path,
) -> Result<FoundCredentials> {
    match (
        var(env_vars::ACCESS_KEY_ID),
        var(env_vars::SECRET_ACCESS_KEY),
    ) {
        (Some(id), Some(secret)) => {
            return Ok(FoundCredentials {
                access_key_id: id,
                secret_access_key: Secret(secret),
                session_token: var(env_vars::SESSION_TOKEN).map(Secret),
                source: CredentialSource::Environment,
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::IncompleteCredentials {
                location: "the environment".to_owned(),
            });
        }
        (None, None) => {}
    }

    let mut searched = Vec::new();
    if let Some(path) = credentials_path {
        searched.push(path.to_owned());
        if let Some(ini) = read_ini(path)?
            && let Some(found) = profile_credentials(&ini, profile, profile, path)?
        {
            return Ok(found);
        }
    }
    if let Some(((path, ini), section)) = config {
        searched.push(path.to_owned());
        if let Some(found) = profile_credentials(ini, section, profile, path)? {
            return Ok(found);
        }
    }
    if profile_named && profile != DATA_DIR_PROFILE {
        return Err(Error::ProfileNotFound {
            profile: profile.to_owned(),
            searched,
        });
    }
    let path = data_dir.join("credentials");
    searched.push(path.clone());
    if let Some(ini) = read_ini(&path)?
        && let Some(found) = profile_credentials(&ini, DATA_DIR_PROFILE, DATA_DIR_PROFILE, &path)?
    {
        return Ok(FoundCredentials {
            source: CredentialSource::DataDir { path },
            ..found
        });
    }
    Err(Error::NoCredentials { searched })
}

/// The key pair of one section; `None` when the section has neither key.
fn profile_credentials(
    ini: &Ini,
    section: &str,
    profile: &str,
    path: &Path,
) -> Result<Option<FoundCredentials>> {
    let id = ini.get(section, "aws_access_key_id");
    let secret = ini.get(section, "aws_secret_access_key");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(FoundCredentials {
            access_key_id: id.to_owned(),
            secret_access_key: Secret::new(secret),
            session_token: ini.get(section, "aws_session_token").map(Secret::new),
            source: CredentialSource::Profile {
                profile: profile.to_owned(),
                path: path.to_owned(),
            },
        })),
        (None, None) => Ok(None),
        _ => Err(Error::IncompleteCredentials {
            location: format!("profile {profile} in {}", path.display()),
        }),
    }
}

/// The config file names profiles `[profile NAME]`; `default` may also be `[default]`.
fn config_section_name(ini: &Ini, profile: &str) -> Option<String> {
    let prefixed = format!("profile {profile}");
    if ini.has_section(&prefixed) {
        Some(prefixed)
    } else if profile == "default" && ini.has_section("default") {
        Some("default".to_owned())
    } else {
        None
    }
}

/// The file named by the variable (with `~` expanded), else `~/.aws/<name>`.
fn shared_file_path(
    from_env: Option<String>,
    home: &Option<PathBuf>,
    name: &str,
) -> Option<PathBuf> {
    match from_env {
        Some(path) => match (path.strip_prefix("~/").or(path.strip_prefix("~\\")), home) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(PathBuf::from(path)),
        },
        None => home.as_ref().map(|h| h.join(".aws").join(name)),
    }
}

/// Reads and parses an INI file; a missing file is `None`, other failures are errors.
fn read_ini(path: &Path) -> Result<Option<Ini>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Ini::parse(&String::from_utf8_lossy(&bytes)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Checks the endpoint is an absolute http(s) URL with a host; drops a trailing `/`.
pub(crate) fn normalize_endpoint(text: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        url: text.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("there is no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials do not belong in the URL"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A fake environment whose home is a temp dir, so no real file is read.
    struct Fixture {
        home: tempfile::TempDir,
        vars: HashMap<String, String>,
    }

    impl Fixture {
        fn new() -> Self {
            let home = tempfile::tempdir().unwrap();
            let mut vars = HashMap::new();
            vars.insert("HOME".to_owned(), home.path().display().to_string());
            Self { home, vars }
        }

        fn set(&mut self, k: &str, v: &str) -> &mut Self {
            self.vars.insert(k.to_owned(), v.to_owned());
            self
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.home.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }

        fn data_dir(&self) -> PathBuf {
            self.home.path().join("cairn-data")
        }

        fn resolve(&self, endpoint: Option<&str>, profile: Option<&str>) -> Result<ClientConfig> {
            resolve_with_env(endpoint, profile, &self.data_dir(), &|k| {
                self.vars.get(k).cloned()
            })
        }
    }

    const CAIRN_FILE: &str =
        "[cairn]\naws_access_key_id = AKIACAIRN\naws_secret_access_key = cairnsecret\n";

    #[test]
    fn test_endpoint_precedence() {
        let mut f = Fixture::new();
        f.write("cairn-data/credentials", CAIRN_FILE);
        assert_eq!(f.resolve(None, None).unwrap().endpoint, DEFAULT_ENDPOINT);
        f.write(
            ".aws/config",
            "[default]\nendpoint_url = http://from-config:1\n",
        );
        assert_eq!(
            f.resolve(None, None).unwrap().endpoint,
            "http://from-config:1"
        );
        f.set("AWS_ENDPOINT_URL", "http://global:2/");
        assert_eq!(f.resolve(None, None).unwrap().endpoint, "http://global:2");
        f.set("AWS_ENDPOINT_URL_CLOUDTRAIL_DATA", "http://service:3");
        assert_eq!(f.resolve(None, None).unwrap().endpoint, "http://service:3");
        assert_eq!(
            f.resolve(Some("https://explicit.example:4/prefix/"), None)
                .unwrap()
                .endpoint,
            "https://explicit.example:4/prefix"
        );
    }

    #[test]
    fn test_empty_env_vars_count_as_unset() {
        let mut f = Fixture::new();
        f.write("cairn-data/credentials", CAIRN_FILE);
        f.set("AWS_ENDPOINT_URL", "")
            .set("AWS_ACCESS_KEY_ID", "")
            .set("AWS_REGION", " ");
        let c = f.resolve(None, None).unwrap();
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.region, DEFAULT_REGION);
        assert_eq!(c.access_key_id, "AKIACAIRN");
    }

    #[test]
    fn test_invalid_endpoints_are_refused() {
        let f = Fixture::new();
        f.write("cairn-data/credentials", CAIRN_FILE);
        for bad in [
            "127.0.0.1:7447",
            "ftp://host",
            "http://",
            "http://h/?q=1",
            "http://u:p@h",
            "not a url",
        ] {
            let err = f.resolve(Some(bad), None).unwrap_err();
            assert!(matches!(err, Error::InvalidEndpoint { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn test_credentials_environment_beats_profiles() {
        let mut f = Fixture::new();
        f.write(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = filesecret\n",
        );
        f.set("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set("AWS_SECRET_ACCESS_KEY", "envsecret")
            .set("AWS_SESSION_TOKEN", "envtoken");
        let c = f.resolve(None, None).unwrap();
        assert_eq!(c.access_key_id, "AKIAENV");
        assert_eq!(c.secret_access_key.expose(), "envsecret");
        assert_eq!(
            c.session_token.as_ref().map(Secret::expose),
            Some("envtoken")
        );
        assert_eq!(c.credential_source, CredentialSource::Environment);
    }

    #[test]
    fn test_credentials_partial_environment_is_an_error() {
        let mut f = Fixture::new();
        f.set("AWS_ACCESS_KEY_ID", "AKIAENV");
        assert!(matches!(
            f.resolve(None, None).unwrap_err(),
            Error::IncompleteCredentials { .. }
        ));
    }

    #[test]
    fn test_credentials_profile_precedence() {
        let mut f = Fixture::new();
        let path = f.write(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s0\n\
             [env]\naws_access_key_id = AKIAENVPROFILE\naws_secret_access_key = s1\n\
             [flag]\naws_access_key_id = AKIAFLAG\naws_secret_access_key = s2\naws_session_token = t2\n",
        );
        f.write("cairn-data/credentials", CAIRN_FILE);
        let c = f.resolve(None, None).unwrap();
        assert_eq!(c.access_key_id, "AKIADEFAULT");
        assert_eq!(
            c.credential_source,
            CredentialSource::Profile {
                profile: "default".into(),
                path: path.clone()
            }
        );
        f.set("AWS_PROFILE", "env");
        assert_eq!(
            f.resolve(None, None).unwrap().access_key_id,
            "AKIAENVPROFILE"
        );
        let c = f.resolve(None, Some("flag")).unwrap();
        assert_eq!(c.access_key_id, "AKIAFLAG");
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("t2"));
    }

    #[test]
    fn test_credentials_file_from_env_var_and_tilde() {
        let mut f = Fixture::new();
        f.write(
            "elsewhere/creds",
            "[default]\naws_access_key_id = AKIAELSEWHERE\naws_secret_access_key = s\n",
        );
        f.write(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIAHOME\naws_secret_access_key = s\n",
        );
        f.set("AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere/creds");
        assert_eq!(
            f.resolve(None, None).unwrap().access_key_id,
            "AKIAELSEWHERE"
        );
    }

    #[test]
    fn test_credentials_from_config_file_profile() {
        let f = Fixture::new();
        f.write(
            ".aws/config",
            "[profile dev]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = s\nregion = eu-west-1\n",
        );
        let c = f.resolve(None, Some("dev")).unwrap();
        assert_eq!(c.access_key_id, "AKIACONFIG");
        assert_eq!(c.region, "eu-west-1");
    }

    #[test]
    fn test_credentials_fall_back_to_data_dir() {
        let f = Fixture::new();
        let path = f.write("cairn-data/credentials", CAIRN_FILE);
        // A default profile without keys (config only) does not stop the fallback.
        f.write(".aws/config", "[default]\nregion = ap-southeast-2\n");
        let c = f.resolve(None, None).unwrap();
        assert_eq!(c.access_key_id, "AKIACAIRN");
        assert_eq!(c.secret_access_key.expose(), "cairnsecret");
        assert_eq!(c.region, "ap-southeast-2");
        assert_eq!(c.credential_source, CredentialSource::DataDir { path });
        // Naming the cairn profile also reaches the data dir.
        assert_eq!(
            f.resolve(None, Some("cairn")).unwrap().access_key_id,
            "AKIACAIRN"
        );
    }

    #[test]
    fn test_named_missing_profile_is_an_error() {
        let mut f = Fixture::new();
        f.write("cairn-data/credentials", CAIRN_FILE);
        assert!(matches!(
            f.resolve(None, Some("nope")).unwrap_err(),
            Error::ProfileNotFound { profile, .. } if profile == "nope"
        ));
        f.set("AWS_PROFILE", "also-nope");
        assert!(matches!(
            f.resolve(None, None).unwrap_err(),
            Error::ProfileNotFound { .. }
        ));
    }

    #[test]
    fn test_no_credentials_anywhere() {
        let f = Fixture::new();
        let err = f.resolve(None, None).unwrap_err();
        assert!(
            matches!(&err, Error::NoCredentials { searched } if searched.len() == 2),
            "{err}"
        );
    }

    #[test]
    fn test_incomplete_profile_is_an_error() {
        let f = Fixture::new();
        f.write(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIAONLY\n",
        );
        assert!(matches!(
            f.resolve(None, None).unwrap_err(),
            Error::IncompleteCredentials { .. }
        ));
    }

    #[test]
    fn test_region_precedence() {
        let mut f = Fixture::new();
        f.write("cairn-data/credentials", CAIRN_FILE);
        assert_eq!(f.resolve(None, None).unwrap().region, "us-east-1");
        f.write(
            ".aws/config",
            "[default]\nregion = eu-west-1\n[profile p]\nregion = eu-central-1\n",
        );
        assert_eq!(f.resolve(None, None).unwrap().region, "eu-west-1");
        f.write(
            ".aws/credentials",
            "[p]\naws_access_key_id = AKIAP\naws_secret_access_key = s\n",
        );
        assert_eq!(f.resolve(None, Some("p")).unwrap().region, "eu-central-1");
        f.set("AWS_DEFAULT_REGION", "us-west-1");
        assert_eq!(f.resolve(None, Some("p")).unwrap().region, "us-west-1");
        f.set("AWS_REGION", "us-west-2");
        assert_eq!(f.resolve(None, Some("p")).unwrap().region, "us-west-2");
    }

    #[test]
    fn test_config_profile_default_may_be_prefixed() {
        let f = Fixture::new();
        f.write("cairn-data/credentials", CAIRN_FILE);
        f.write(".aws/config", "[profile default]\nregion = sa-east-1\n");
        assert_eq!(f.resolve(None, None).unwrap().region, "sa-east-1");
    }

    #[test]
    fn test_secrets_are_redacted_in_debug() {
        let mut f = Fixture::new();
        f.set("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set("AWS_SECRET_ACCESS_KEY", "super-secret-value")
            .set("AWS_SESSION_TOKEN", "super-secret-token");
        let c = f.resolve(None, None).unwrap();
        let debug = format!("{c:?}");
        assert!(debug.contains("AKIAENV"));
        assert!(!debug.contains("super-secret"), "{debug}");
    }
}
