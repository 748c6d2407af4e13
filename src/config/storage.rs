//! Remote outputs: an object-store URL given as the output (`s3://`, `gs://`, `az://`,
//! ...), the storage options that reach it, and the secrets kept out of every message.
//!
//! Credentials come from each cloud's standard chain as `object_store` reads it: the
//! environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), then the platform's (instance metadata,
//! web identity, container credentials, Azure managed identity), for S3 also the shared
//! credentials and config files (`~/.aws/credentials`, `~/.aws/config`, `AWS_PROFILE`;
//! static keys only, see [`aws_profile`]), and storage options (`--storage-option
//! KEY=VALUE`, the job's `[storage]` table) over all of them. A URL that carries a secret
//! (`s3://KEY:SECRET@bucket`, an Azure `?sig=` token) is refused: the output path is
//! printed in messages, reports and the ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use url::Url;

/// The part size of a multipart upload when `part_size` is not given: large enough that
/// an object of 160 GB fits S3's 10,000 parts, small enough to bound memory.
pub const DEFAULT_PART_SIZE: usize = 16 << 20;
/// Parts uploaded at once when `upload_concurrency` is not given.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 2;
/// S3's (and GCS's XML API's) smallest part but the last.
const MIN_PART_SIZE: usize = 5 << 20;

/// The cloud an object-store URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    S3,
    Gcs,
    Azure,
}

impl Cloud {
    fn name(self) -> &'static str {
        match self {
            Cloud::S3 => "S3",
            Cloud::Gcs => "GCS",
            Cloud::Azure => "Azure Blob",
        }
    }
}

/// An output in object storage: where it goes and how to reach it.
#[derive(Clone)]
pub struct ObjectOutput {
    /// The output URL as given (without secrets: see [`parse_output`]).
    pub url: Url,
    pub cloud: Cloud,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The object's key in the bucket.
    pub key: ObjectPath,
    /// Storage options for the cloud's builder, checked against its keys.
    options: Vec<(String, String)>,
    /// Bytes per part of a multipart upload (`part_size`).
    pub part_size: usize,
    /// Parts uploaded at once (`upload_concurrency`).
    pub concurrency: usize,
    /// Values never to print: the secret options' and the environment's credentials.
    secrets: Arc<Vec<String>>,
}

impl std::fmt::Debug for ObjectOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectOutput")
            .field("url", &self.url.as_str())
            .field(
                "options",
                &self.options.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Why an output URL or a storage option is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    #[error("{0} is not a valid URL: {1}")]
    Url(String, String),
    #[error("{0}: the URL names no bucket or container")]
    NoBucket(String),
    #[error("{0}: the URL names no object (it must end in a file name)")]
    NoObject(String),
    #[error(
        "{0}: credentials do not belong in the output URL (it is printed in reports and the \
         ledger); give them by the environment, the cloud's credential files or --storage-option"
    )]
    Credentials(String),
    #[error("storage option `{key}` is not one {cloud} takes (see README, \"Remote outputs\")")]
    UnknownOption { key: String, cloud: &'static str },
    #[error("storage option `{key}`: {message}")]
    BadOption { key: String, message: String },
    #[error("storage options are given but the output {0} is not in object storage")]
    NotRemote(String),
}

/// The schemes of object-store URLs; `file://` is a local path.
pub fn is_url(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    matches!(
        scheme.to_ascii_lowercase().as_str(),
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" | "file"
    )
}

/// Where an output given as a URL goes: a local path (`file://`) or an object store.
pub enum OutputUrl {
    Local(PathBuf),
    Object(Box<ObjectOutput>),
}

/// Reads an output URL (see [`is_url`]) with its storage options (in order, later ones
/// winning).
pub fn parse_output(text: &str, options: &[(String, String)]) -> Result<OutputUrl, StorageError> {
    let url = Url::parse(text).map_err(|e| StorageError::Url(redact_url(text), e.to_string()))?;
    if url.scheme() == "file" {
        if !options.is_empty() {
            return Err(StorageError::NotRemote(text.to_string()));
        }
        let path = url
            .to_file_path()
            .map_err(|()| StorageError::Url(text.to_string(), "not a local path".into()))?;
        return Ok(OutputUrl::Local(path));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url
            .query_pairs()
            .any(|(k, _)| matches!(k.as_ref(), "sig" | "se" | "sv" | "sp" | "sr" | "st"))
    {
        return Err(StorageError::Credentials(redact_url(text)));
    }
    let cloud = match url.scheme() {
        "s3" | "s3a" => Cloud::S3,
        "gs" => Cloud::Gcs,
        _ => Cloud::Azure,
    };
    let bucket = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| StorageError::NoBucket(text.to_string()))?
        .to_string();
    // `abfss://container@account.dfs.core.windows.net/path`: the container is the user
    // part, which `username()` above refused; object_store reads the same form.
    let key = ObjectPath::from_url_path(url.path())
        .map_err(|e| StorageError::Url(text.to_string(), e.to_string()))?;
    if url.path().ends_with('/') || key.filename().is_none() {
        return Err(StorageError::NoObject(text.to_string()));
    }
    let mut own = BTreeMap::new();
    let mut cloud_options = Vec::new();
    let mut secrets = environment_secrets();
    for (key, value) in options {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "part_size" | "upload_concurrency" => {
                own.insert(lower, value.clone());
                continue;
            }
            _ => {}
        }
        let known = match cloud {
            Cloud::S3 => AmazonS3ConfigKey::from_str(&lower).is_ok(),
            Cloud::Gcs => GoogleConfigKey::from_str(&lower).is_ok(),
            Cloud::Azure => AzureConfigKey::from_str(&lower).is_ok(),
        };
        if !known {
            return Err(StorageError::UnknownOption {
                key: key.clone(),
                cloud: cloud.name(),
            });
        }
        if is_secret(&lower) && !value.is_empty() {
            secrets.push(value.clone());
        }
        cloud_options.push((lower, value.clone()));
    }
    let part_size = match own.get("part_size") {
        Some(text) => {
            let bytes =
                crate::config::values::parse_size(text).map_err(|e| StorageError::BadOption {
                    key: "part_size".into(),
                    message: e.to_string(),
                })?;
            if bytes < MIN_PART_SIZE as u64 || bytes > (5u64 << 30) {
                return Err(StorageError::BadOption {
                    key: "part_size".into(),
                    message: format!("{text} is outside 5MiB..5GiB, the sizes object stores take"),
                });
            }
            if cloud == Cloud::Gcs && bytes % (256 << 10) != 0 {
                return Err(StorageError::BadOption {
                    key: "part_size".into(),
                    message: format!("{text}: GCS takes pieces in multiples of 256 KiB"),
                });
            }
            bytes as usize
        }
        None => DEFAULT_PART_SIZE,
    };
    let concurrency = match own.get("upload_concurrency") {
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => {
                return Err(StorageError::BadOption {
                    key: "upload_concurrency".into(),
                    message: format!("{text:?} is not a number from 1 to 64"),
                });
            }
        },
        None => DEFAULT_UPLOAD_CONCURRENCY,
    };
    secrets.retain(|s| s.len() >= 4);
    let output = ObjectOutput {
        url,
        cloud,
        bucket,
        key,
        options: cloud_options,
        part_size,
        concurrency,
        secrets: Arc::new(secrets),
    };
    // Building the client checks the options' values (no request is made).
    output
        .check_client()
        .map_err(|message| StorageError::BadOption {
            key: "(storage)".into(),
            message,
        })?;
    Ok(OutputUrl::Object(Box::new(output)))
}

impl ObjectOutput {
    /// The output's URL, for messages.
    pub fn display(&self) -> String {
        self.url.to_string()
    }

    /// The URL of `name` beside the output (a split output's part or manifest).
    pub fn sibling(&self, name: &str) -> (ObjectPath, String) {
        let key = self.parent().join(name);
        let mut url = self.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop().push(name);
        }
        (key, url.to_string())
    }

    /// The key and URL of `relative` (`a=1/part-00000.parquet`) under the output, taken
    /// as a prefix (a dataset's): the key holds the segments as they are (a Hive name's
    /// `%XX` stays), the URL has them percent-encoded.
    pub fn under(&self, relative: &str) -> Result<(ObjectPath, String), String> {
        let key = ObjectPath::parse(format!("{}/{relative}", self.key.as_ref()))
            .map_err(|e| e.to_string())?;
        let mut url = self.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(relative.split('/'));
        }
        Ok((key, url.to_string()))
    }

    /// The object's directory in the bucket.
    pub fn parent(&self) -> ObjectPath {
        let parts: Vec<_> = self.key.parts().collect();
        parts[..parts.len().saturating_sub(1)]
            .iter()
            .cloned()
            .collect()
    }

    /// Builds the client `sink::object::store` uses for the URL's cloud, which checks
    /// the options' values (no request is made).
    fn check_client(&self) -> Result<(), String> {
        match self.cloud {
            Cloud::S3 => self.s3().map(drop),
            Cloud::Gcs => self.google().map(drop),
            Cloud::Azure => self.azure().map(drop),
        }
    }

    /// An S3 client: the credential chain (with the shared credentials files), then the
    /// options.
    pub fn s3(&self) -> Result<AmazonS3, String> {
        let builder = aws_profile(AmazonS3Builder::from_env()).with_url(self.url.as_str());
        configured(builder, &self.options, AmazonS3Builder::with_config)?
            .build()
            .map_err(|e| self.scrub(&e))
    }

    /// An Azure Blob client: the credential chain, then the options.
    pub fn azure(&self) -> Result<MicrosoftAzure, String> {
        let builder = MicrosoftAzureBuilder::from_env().with_url(self.url.as_str());
        configured(builder, &self.options, MicrosoftAzureBuilder::with_config)?
            .build()
            .map_err(|e| self.scrub(&e))
    }

    /// What the GCS JSON API store needs (`sink::gcs`): the credential chain of
    /// `object_store`'s GCS client, and the API's address (`base_url`, else the service
    /// account file's `gcs_base_url`, else Google's).
    pub fn google(&self) -> Result<(GcpCredentialProvider, String), String> {
        let builder = GoogleCloudStorageBuilder::from_env().with_url(self.url.as_str());
        let builder = configured(
            builder,
            &self.options,
            GoogleCloudStorageBuilder::with_config,
        )?;
        let account = builder
            .get_config_value(&GoogleConfigKey::ServiceAccount)
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
            .and_then(|json| json["gcs_base_url"].as_str().map(str::to_string));
        let base = builder
            .get_config_value(&GoogleConfigKey::BaseUrl)
            .or(account)
            .unwrap_or_else(|| "https://storage.googleapis.com".to_string());
        let store = builder.build().map_err(|e| self.scrub(&e))?;
        Ok((store.credentials().clone(), base))
    }

    /// `message` with every secret replaced by `***`: the storage options' secret
    /// values, the environment's credentials, and signatures in URLs (`sig=`,
    /// `X-Amz-Signature=`, `X-Amz-Credential=`, `X-Amz-Security-Token=`).
    pub fn scrub(&self, message: &dyn std::fmt::Display) -> String {
        scrub(&message.to_string(), &self.secrets)
    }

    /// Where the output is staged locally while it uploads: a directory of its own
    /// (by the URL's hash) under `TRIBUTARY_STAGING_DIR`, else the system's temporary
    /// directory.
    pub fn staging_path(&self) -> PathBuf {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.url.as_str().as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let root = std::env::var_os("TRIBUTARY_STAGING_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("tributary-staging"));
        let name = self.key.filename().unwrap_or("output.parquet");
        root.join(hash).join(name)
    }
}

/// `builder` with `options` applied, each read as the cloud's configuration key `K`.
fn configured<B, K>(
    builder: B,
    options: &[(String, String)],
    with_config: impl Fn(B, K, String) -> B,
) -> Result<B, String>
where
    K: FromStr,
    K::Err: std::fmt::Display,
{
    options.iter().try_fold(builder, |builder, (key, value)| {
        let key = K::from_str(key).map_err(|e| e.to_string())?;
        Ok(with_config(builder, key, value.clone()))
    })
}

/// Whether a storage option's value is a secret (never printed).
fn is_secret(key: &str) -> bool {
    ["secret", "token", "sas", "key", "password", "credential"]
        .iter()
        .any(|word| key.contains(word))
        && !key.ends_with("key_id")
        && !key.ends_with("_file")
}

/// The environment's credentials, which the builders read and errors might echo.
fn environment_secrets() -> Vec<String> {
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SSE_CUSTOMER_KEY_BASE64",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .filter(|v| !v.is_empty())
    .collect()
}

/// Replaces `secrets` and URL signatures in `message` with `***`.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for secret in secrets {
        if !secret.is_empty() {
            out = out.replace(secret.as_str(), "***");
        }
    }
    for param in [
        "sig=",
        "X-Amz-Signature=",
        "X-Amz-Credential=",
        "X-Amz-Security-Token=",
    ] {
        let mut from = 0;
        while let Some(at) = out[from..].find(param) {
            let start = from + at + param.len();
            let end = out[start..]
                .find(['&', ' ', '"', '\'', ')'])
                .map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

/// A URL as it may be printed: without a user, password or query.
fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => "the output URL".to_string(),
    }
}

/// The S3 builder with the shared credentials and config files' settings for the
/// profile `AWS_PROFILE` (else `default`), where the environment gives none: static keys
/// (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`), `region` and
/// `endpoint_url`. Profiles that assume a role or use SSO are not read: give such
/// credentials through the environment (`aws configure export-credentials`).
pub fn aws_profile(builder: AmazonS3Builder) -> AmazonS3Builder {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let mut settings = BTreeMap::new();
    if let Some(path) = file("AWS_CONFIG_FILE", "config") {
        let section = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        settings.extend(ini_section(&path, &section));
    }
    if let Some(path) = file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
        settings.extend(ini_section(&path, &profile));
    }
    let mut builder = builder;
    let env_has = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if !env_has("AWS_ACCESS_KEY_ID")
        && let (Some(id), Some(secret)) = (
            settings.get("aws_access_key_id"),
            settings.get("aws_secret_access_key"),
        )
    {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
        if let Some(token) = settings.get("aws_session_token") {
            builder = builder.with_token(token);
        }
    }
    if !env_has("AWS_REGION")
        && !env_has("AWS_DEFAULT_REGION")
        && let Some(region) = settings.get("region")
    {
        builder = builder.with_region(region);
    }
    if !env_has("AWS_ENDPOINT_URL")
        && !env_has("AWS_ENDPOINT")
        && let Some(endpoint) = settings.get("endpoint_url")
    {
        builder = builder.with_endpoint(endpoint);
    }
    builder
}

/// The `key = value` lines of `[section]` in an INI file (missing file: none).
fn ini_section(path: &Path, section: &str) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let mut inside = false;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str, options: &[(&str, &str)]) -> Result<ObjectOutput, StorageError> {
        let options: Vec<_> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse_output(text, &options)? {
            OutputUrl::Object(o) => Ok(*o),
            OutputUrl::Local(p) => panic!("{text} read as the local path {}", p.display()),
        }
    }

    #[test]
    fn urls_name_their_cloud_bucket_and_key() {
        let o = object("s3://bucket/a/b/x.parquet", &[("region", "eu-west-1")]).unwrap();
        assert_eq!((o.cloud, o.bucket.as_str()), (Cloud::S3, "bucket"));
        assert_eq!(o.key.as_ref(), "a/b/x.parquet");
        assert_eq!(
            o.sibling("x-00000.parquet").0.as_ref(),
            "a/b/x-00000.parquet"
        );
        assert_eq!(
            o.sibling("x.manifest.json").1,
            "s3://bucket/a/b/x.manifest.json"
        );
        assert_eq!(object("gs://b/x.parquet", &[]).unwrap().cloud, Cloud::Gcs);
        let az = object(
            "az://container/x.parquet",
            &[("account_name", "devstoreaccount1")],
        )
        .unwrap();
        assert_eq!((az.cloud, az.bucket.as_str()), (Cloud::Azure, "container"));
        match parse_output("file:///tmp/out/x.parquet", &[]).unwrap() {
            OutputUrl::Local(p) => assert_eq!(p, Path::new("/tmp/out/x.parquet")),
            OutputUrl::Object(_) => panic!("file:// is local"),
        }
    }

    #[test]
    fn secrets_in_the_url_and_unknown_options_are_refused() {
        let err = object("s3://AKIA:verysecret@bucket/x.parquet", &[]).unwrap_err();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
        assert!(!err.to_string().contains("verysecret"), "{err}");
        let err = object("az://c/x.parquet?sv=1&sig=abcdef", &[]).unwrap_err();
        assert!(!err.to_string().contains("abcdef"), "{err}");
        let err = object("s3://bucket/x.parquet", &[("no_such_option", "1")]).unwrap_err();
        assert_eq!(
            err,
            StorageError::UnknownOption {
                key: "no_such_option".into(),
                cloud: "S3"
            }
        );
        assert!(matches!(
            object("s3://bucket/dir/", &[]).unwrap_err(),
            StorageError::NoObject(_)
        ));
        assert!(matches!(
            object("s3://bucket/x.parquet", &[("part_size", "1MB")]).unwrap_err(),
            StorageError::BadOption { .. }
        ));
    }

    #[test]
    fn scrub_hides_secret_options_and_signatures() {
        let o = object(
            "s3://bucket/x.parquet",
            &[
                ("aws_secret_access_key", "s3cr3t-value"),
                ("access_key_id", "AKIAEXAMPLE"),
            ],
        )
        .unwrap();
        let message = "PUT https://h/b/x?X-Amz-Signature=deadbeef&a=1 failed with s3cr3t-value";
        let scrubbed = o.scrub(&message);
        assert_eq!(
            scrubbed,
            "PUT https://h/b/x?X-Amz-Signature=***&a=1 failed with ***"
        );
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_shared_credentials_file_gives_the_profile_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = A\n[other]\naws_access_key_id = B\n\
             aws_secret_access_key = S\n",
        )
        .unwrap();
        assert_eq!(ini_section(&path, "other")["aws_secret_access_key"], "S");
        assert_eq!(ini_section(&path, "default")["aws_access_key_id"], "A");
        assert!(ini_section(&path, "missing").is_empty());
    }
}
