//! Google Cloud Storage through its JSON API: the [`ObjectStore`] operations a remote
//! output needs, with large objects sent as a resumable upload.
//!
//! `object_store`'s GCS client speaks the XML API, whose multipart uploads are GCS's
//! S3-compatible path; GCS's own way to send a large object in pieces is the JSON API's
//! resumable upload (what `gsutil`, `gcloud storage` and the Google client libraries
//! use), which the GCS emulators implement as well. This store keeps `object_store`'s
//! GCS credential chain (service account, application default credentials, metadata
//! server) and sends its requests to the JSON API:
//! - `put`: a single-request (`uploadType=media`) upload; put-if-absent (a Delta table's
//!   commit) with the precondition `ifGenerationMatch=0`;
//! - `put_multipart`: a resumable session; the parts go in order (each waits for the one
//!   before it: a session takes its bytes in sequence), each a multiple of 256 KiB but
//!   the last, and the object appears when the session is finalized. Abort deletes the
//!   session;
//! - `head`, `get` (a whole object or a range, of the generation the request found: what
//!   a Delta table's log is read with), `list`, `list_with_delimiter`, `delete`.
//!
//! Copying objects is not needed by tributary and not provided.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{BoxStream, StreamExt};
use object_store::gcp::{GcpCredential, GcpCredentialProvider};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

const STORE: &str = "GCS";

/// A bucket of Google Cloud Storage, reached through the JSON API.
#[derive(Debug, Clone)]
pub struct GcsJson {
    client: reqwest::Client,
    /// `https://storage.googleapis.com`, or an emulator's address.
    base: String,
    bucket: String,
    credentials: GcpCredentialProvider,
}

impl std::fmt::Display for GcsJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GCS(gs://{})", self.bucket)
    }
}

fn generic(e: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: e.to_string().into(),
    }
}

/// The object's name as one path segment of a JSON API URL.
fn encoded(location: &Path) -> String {
    percent_encoding::utf8_percent_encode(location.as_ref(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

/// An object resource of the JSON API.
#[derive(serde::Deserialize)]
struct Resource {
    name: String,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    generation: Option<String>,
    #[serde(default)]
    updated: Option<String>,
}

impl Resource {
    fn meta(self) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(self.name),
            last_modified: self
                .updated
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
            size: self.size.and_then(|s| s.parse().ok()).unwrap_or(0),
            e_tag: self.etag,
            version: self.generation,
        }
    }

    fn put_result(self) -> PutResult {
        PutResult {
            e_tag: self.etag,
            version: self.generation,
        }
    }
}

#[derive(serde::Deserialize)]
struct Listing {
    #[serde(default)]
    items: Vec<Resource>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

impl GcsJson {
    /// A store of `bucket` at `base`, authenticated by `credentials`.
    pub fn new(base: &str, bucket: &str, credentials: GcpCredentialProvider) -> GcsJson {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        GcsJson {
            client,
            base: base.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            credentials,
        }
    }

    /// A request with the credential's bearer token (none when OAuth is off).
    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> object_store::Result<reqwest::RequestBuilder> {
        let credential: Arc<GcpCredential> = self.credentials.get_credential().await?;
        let request = self.client.request(method, url);
        Ok(match credential.bearer.as_str() {
            "" => request,
            token => request.bearer_auth(token),
        })
    }

    fn object_url(&self, location: &Path) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            self.bucket,
            encoded(location)
        )
    }

    /// Lists `prefix` (with `delimiter`), every page.
    async fn list_all(
        &self,
        prefix: Option<&Path>,
        delimiter: bool,
    ) -> object_store::Result<(Vec<ObjectMeta>, Vec<Path>)> {
        let prefix = prefix
            .map(|p| format!("{}/", p.as_ref()))
            .filter(|p| p != "/")
            .unwrap_or_default();
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("prefix", prefix.clone())];
            if delimiter {
                query.push(("delimiter", "/".into()));
            }
            if let Some(token) = &token {
                query.push(("pageToken", token.clone()));
            }
            let url = format!("{}/storage/v1/b/{}/o", self.base, self.bucket);
            let response = self
                .request(reqwest::Method::GET, &url)
                .await?
                .query(&query)
                .send()
                .await
                .map_err(generic)?;
            let listing: Listing = json(response, &self.bucket).await?;
            objects.extend(listing.items.into_iter().map(Resource::meta));
            prefixes.extend(
                listing
                    .prefixes
                    .iter()
                    .map(|p| Path::from(p.trim_end_matches('/'))),
            );
            match listing.next_page_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok((objects, prefixes)),
            }
        }
    }
}

/// The response's JSON body, or an error with its status and text.
async fn json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    path: &str,
) -> object_store::Result<T> {
    let status = response.status();
    let body = response.bytes().await.map_err(generic)?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(object_store::Error::NotFound {
            path: path.to_string(),
            source: String::from_utf8_lossy(&body).into_owned().into(),
        });
    }
    if !status.is_success() {
        return Err(generic(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    serde_json::from_slice(&body).map_err(generic)
}

#[async_trait::async_trait]
impl ObjectStore for GcsJson {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let url = format!("{}/upload/storage/v1/b/{}/o", self.base, self.bucket);
        let mut request = self
            .request(reqwest::Method::POST, &url)
            .await?
            .query(&[("uploadType", "media"), ("name", location.as_ref())]);
        match opts.mode {
            PutMode::Overwrite => {}
            // Only if no live object has the name (a Delta table's commit).
            PutMode::Create => request = request.query(&[("ifGenerationMatch", "0")]),
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "a conditional update".into(),
                    implementer: STORE.into(),
                });
            }
        }
        let response = request
            .header("Content-Type", "application/octet-stream")
            .body(Bytes::from(payload))
            .send()
            .await
            .map_err(generic)?;
        if response.status() == reqwest::StatusCode::PRECONDITION_FAILED {
            return Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "an object of this name exists".into(),
            });
        }
        let resource: Resource = json(response, location.as_ref()).await?;
        Ok(resource.put_result())
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let url = format!("{}/upload/storage/v1/b/{}/o", self.base, self.bucket);
        let response = self
            .request(reqwest::Method::POST, &url)
            .await?
            .query(&[("uploadType", "resumable"), ("name", location.as_ref())])
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .map_err(generic)?;
        let status = response.status();
        let session = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(session) = session.filter(|_| status.is_success()) else {
            let body = response.text().await.unwrap_or_default();
            return Err(generic(format!(
                "starting a resumable upload of {location}: {status}: {}",
                body.trim()
            )));
        };
        Ok(Box::new(Resumable {
            store: self.clone(),
            session: Arc::new(session),
            sent: 0,
            previous: futures_util::future::ready(Ok(())).boxed().shared(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let response = self
            .request(reqwest::Method::GET, &self.object_url(location))
            .await?
            .send()
            .await
            .map_err(generic)?;
        let meta = json::<Resource>(response, location.as_ref()).await?.meta();
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures_util::stream::empty().boxed()),
                range: 0..meta.size,
                meta,
                attributes: Default::default(),
            });
        }
        // The object's bytes (a Delta table's log), of the generation just described.
        let range = match &options.range {
            Some(range) => range.as_range(meta.size).map_err(generic)?,
            None => 0..meta.size,
        };
        let mut request = self
            .request(reqwest::Method::GET, &self.object_url(location))
            .await?
            .query(&[("alt", "media")]);
        if let Some(generation) = &meta.version {
            request = request.query(&[("generation", generation)]);
        }
        if options.range.is_some() && !range.is_empty() {
            request = request.header(
                reqwest::header::RANGE,
                format!("bytes={}-{}", range.start, range.end - 1),
            );
        }
        let response = request.send().await.map_err(generic)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "no such object".into(),
            });
        }
        let bytes = response.bytes().await.map_err(generic)?;
        if !status.is_success() {
            return Err(generic(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures_util::stream::once(async { Ok(bytes) }).boxed(),
            ),
            range,
            meta,
            attributes: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .then(move |location| {
                let store = store.clone();
                async move {
                    let location = location?;
                    let response = store
                        .request(reqwest::Method::DELETE, &store.object_url(&location))
                        .await?
                        .send()
                        .await
                        .map_err(generic)?;
                    match response.status() {
                        s if s.is_success() => Ok(location),
                        reqwest::StatusCode::NOT_FOUND => Err(object_store::Error::NotFound {
                            path: location.to_string(),
                            source: "no such object".into(),
                        }),
                        s => Err(generic(format!("deleting {location}: {s}"))),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned();
        futures_util::stream::once(async move { store.list_all(prefix.as_ref(), false).await })
            .flat_map(|listed| match listed {
                Ok((objects, _)) => futures_util::stream::iter(objects.into_iter().map(Ok)).boxed(),
                Err(e) => futures_util::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let (objects, common_prefixes) = self.list_all(prefix, true).await?;
        Ok(ListResult {
            common_prefixes,
            objects,
        })
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(object_store::Error::NotImplemented {
            operation: "copy".into(),
            implementer: STORE.into(),
        })
    }
}

/// A resumable upload session (see the module doc).
struct Resumable {
    store: GcsJson,
    /// The session URI.
    session: Arc<String>,
    /// Bytes handed to parts so far: where the next part starts.
    sent: u64,
    /// The last part's request: the next one waits for it.
    previous: Shared<BoxFuture<'static, Result<(), String>>>,
}

impl std::fmt::Debug for Resumable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumable")
            .field("store", &self.store)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Resumable {
    /// Sends `body` as the bytes from `start`; `total` finalizes the session.
    async fn send(
        store: &GcsJson,
        session: &str,
        start: u64,
        body: Bytes,
        total: Option<u64>,
    ) -> Result<Option<Resource>, String> {
        let end = start + body.len() as u64;
        let range = match (body.is_empty(), total) {
            (true, Some(total)) => format!("bytes */{total}"),
            (false, Some(total)) => format!("bytes {start}-{}/{total}", end - 1),
            (false, None) => format!("bytes {start}-{}/*", end - 1),
            (true, None) => return Ok(None),
        };
        let response = store
            .request(reqwest::Method::PUT, session)
            .await
            .map_err(|e| e.to_string())?
            .header("Content-Range", range)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.as_u16() == 308 {
            return Ok(None);
        }
        let text = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "resumable upload: {status}: {}",
                String::from_utf8_lossy(&text).trim()
            ));
        }
        Ok(serde_json::from_slice(&text).ok())
    }
}

#[async_trait::async_trait]
impl MultipartUpload for Resumable {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let body = Bytes::from(data);
        let start = self.sent;
        self.sent += body.len() as u64;
        let previous = self.previous.clone();
        let (store, session) = (self.store.clone(), self.session.clone());
        let part = async move {
            previous.await?;
            Resumable::send(&store, &session, start, body, None)
                .await
                .map(|_| ())
        }
        .boxed()
        .shared();
        self.previous = part.clone();
        async move { part.await.map_err(generic) }.boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.previous.clone().await.map_err(generic)?;
        let done = Resumable::send(
            &self.store,
            &self.session,
            self.sent,
            Bytes::new(),
            Some(self.sent),
        )
        .await
        .map_err(generic)?;
        Ok(done.map(Resource::put_result).unwrap_or(PutResult {
            e_tag: None,
            version: None,
        }))
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let _ = self.previous.clone().await;
        let response = self
            .store
            .request(reqwest::Method::DELETE, &self.session)
            .await?
            .send()
            .await
            .map_err(generic)?;
        // A cancelled session answers 499.
        match response.status().as_u16() {
            499 | 200..=299 | 404 | 410 => Ok(()),
            s => Err(generic(format!("aborting the resumable upload: {s}"))),
        }
    }
}
