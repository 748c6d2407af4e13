//! The object-store sink: the output staged locally as a [`FileSink`] writes it, and
//! uploaded to S3, GCS or Azure Blob as a multipart upload.
//!
//! One file streams out while the run goes on: each time the staged file has grown by
//! another part (`part_size`), that part is read back and sent, at most
//! `upload_concurrency` parts at once (the merger waits when more are in flight, so memory
//! stays bounded by the parts in flight). The bytes of a Parquet file never change once
//! written, except past the last row group, where the footer goes at commit (see
//! `parquet`): the commit sends what is left and completes the upload. Only a completed
//! multipart upload creates an object, so nothing appears at the target before the
//! commit, and an object already there is untouched until then. A run that fails, is
//! interrupted, or whose commit fails aborts its upload, which deletes the parts already
//! sent.
//!
//! A split output's parts are uploaded at commit, each as its own multipart upload, then
//! its manifest, the commit point (as for local files, see `split`): the previous run's
//! manifest is deleted first, and its parts numbered past this run's are deleted last.
//!
//! A dataset (`--partition-by`) is staged whole and uploaded at commit: the previous
//! run's `_SUCCESS` is deleted first, every file is uploaded to its name under the
//! dataset's prefix, the new `_SUCCESS` is written (the commit point: object stores have
//! no rename), and the previous run's files this run did not write are deleted last. A
//! reader that lists the prefix during the commit can find files of both runs; one that
//! reads the files `_SUCCESS` lists never does.
//!
//! Every message about the output has its secrets replaced by `***` (see
//! [`ObjectOutput::scrub`]).

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use super::dataset::{DatasetSink, SUCCESS, is_dataset_file};
use super::file::FileSink;
use super::{EncodedRowGroup, OutputSummary, RemoteObject, RowGroupId, RowGroupWriters, Sink};
use crate::config::storage::Cloud;
use crate::config::{JobConfig, ObjectOutput, part_index};
use crate::error::{Error, Result};

/// A [`Sink`] writing to object storage (see the module doc).
#[must_use = "dropping a sink aborts its upload"]
pub struct ObjectSink {
    /// Writes the staged files; taken by the commit.
    staged: Option<Staged>,
    remote: ObjectOutput,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
    /// The one file's upload while it streams (not for a split output or a dataset).
    upload: Option<Upload>,
}

/// What the output is staged as locally.
enum Staged {
    /// One file, which streams out while it is written, or a split output's files.
    File { sink: Box<FileSink>, split: bool },
    /// A Hive-partitioned dataset, uploaded at the commit.
    Dataset(Box<DatasetSink>),
}

impl Staged {
    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            Staged::File { sink, .. } => sink.as_mut(),
            Staged::Dataset(sink) => sink.as_mut(),
        }
    }

    fn sink_ref(&self) -> &dyn Sink {
        match self {
            Staged::File { sink, .. } => sink.as_ref(),
            Staged::Dataset(sink) => sink.as_ref(),
        }
    }

    /// Whether the output is one file, streamed while it is written.
    fn streams(&self) -> bool {
        matches!(self, Staged::File { split: false, .. })
    }
}

/// A multipart upload fed from a staged file.
struct Upload {
    parts: WriteMultipart,
    /// A handle on the staged file (it stays valid when the file is renamed).
    file: File,
    /// Bytes of the file sent so far.
    sent: u64,
    sha256: Sha256,
    part_size: usize,
    concurrency: usize,
}

impl ObjectSink {
    /// Prepares the staged output (see `FileSink::create`); the upload starts with the
    /// first row group. No request is made: [`check`] reaches the bucket.
    pub fn create(config: &JobConfig, remote: &ObjectOutput) -> Result<ObjectSink> {
        let store = store(remote).map_err(|e| Error::output(remote.display(), e))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::output(remote.display(), e))?;
        let staged = match &config.options.dataset {
            Some(dataset) => Staged::Dataset(Box::new(DatasetSink::create(config, dataset)?)),
            None => Staged::File {
                sink: Box::new(FileSink::create(config)?),
                split: config.options.split.is_some(),
            },
        };
        Ok(ObjectSink {
            staged: Some(staged),
            remote: remote.clone(),
            store,
            runtime,
            upload: None,
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::output(self.remote.display(), self.remote.scrub(&message))
    }

    fn staged(&mut self) -> &mut dyn Sink {
        self.staged
            .as_mut()
            .expect("taken only by the commit")
            .sink()
    }

    /// Sends every complete part the staged file holds past what was sent.
    fn pump(&mut self) -> Result<()> {
        let Some(mut upload) = self.upload.take() else {
            return Ok(());
        };
        let result = self.wait(upload.send_parts(false));
        self.upload = Some(upload);
        result.map_err(|e| self.error(e))
    }

    /// Runs `future` to its end on the runtime, from any thread (see [`block_on`]).
    fn wait<F: Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        block_on(&self.runtime, future)
    }
}

/// Runs `future` on `runtime` from a thread of its own, and waits for it. The sink runs
/// on the merger's blocking thread, but it may be dropped on one of the runtime's, where
/// `Handle::block_on` is not allowed; a scoped thread costs microseconds a part.
pub(super) fn block_on<F: Future + Send>(runtime: &tokio::runtime::Handle, future: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .expect("an upload step does not panic")
    })
}

impl Upload {
    /// Sends the parts of the file past `sent`: whole parts only, or (at the end) the
    /// rest too. Waits while `concurrency` parts are in flight.
    async fn send_parts(&mut self, to_end: bool) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        while self.sent < len {
            let left = len - self.sent;
            if left < self.part_size as u64 && !to_end {
                break;
            }
            let n = left.min(self.part_size as u64) as usize;
            let mut buf = vec![0u8; n];
            self.file.read_exact_at(&mut buf, self.sent)?;
            self.sha256.update(&buf);
            self.sent += n as u64;
            self.parts.put(buf.into());
            self.parts
                .wait_for_capacity(self.concurrency)
                .await
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// Sends the rest of the file and completes the upload: the object appears.
    async fn finish(mut self) -> std::io::Result<RemoteDone> {
        // `WriteMultipart::finish` aborts when the completion fails, not when a part
        // does: the parts are awaited here first.
        let sent = match self.send_parts(true).await {
            Ok(()) => self
                .parts
                .wait_for_capacity(0)
                .await
                .map_err(std::io::Error::other),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            let _ = self.parts.abort().await;
            return Err(e);
        }
        let bytes = self.sent;
        let sha256 = hex(&self.sha256.finalize());
        let put = self.parts.finish().await.map_err(std::io::Error::other)?;
        Ok(RemoteDone {
            bytes,
            sha256,
            e_tag: put.e_tag,
        })
    }
}

pub(super) struct RemoteDone {
    pub bytes: u64,
    pub sha256: String,
    pub e_tag: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a multipart upload of `file` to `key`.
async fn start_upload(
    store: &Arc<dyn ObjectStore>,
    key: &ObjectPath,
    file: File,
    remote: &ObjectOutput,
) -> object_store::Result<Upload> {
    let upload = store.put_multipart(key).await?;
    Ok(Upload {
        parts: WriteMultipart::new_with_chunk_size(upload, remote.part_size),
        file,
        sent: 0,
        sha256: Sha256::new(),
        part_size: remote.part_size,
        concurrency: remote.concurrency,
    })
}

/// Uploads the local file `path` to `key` whole (multipart), returning what was sent.
pub(super) async fn upload_file(
    store: &Arc<dyn ObjectStore>,
    key: &ObjectPath,
    path: &Path,
    remote: &ObjectOutput,
) -> std::io::Result<RemoteDone> {
    let file = File::open(path)?;
    let upload = start_upload(store, key, file, remote)
        .await
        .map_err(std::io::Error::other)?;
    upload.finish().await
}

impl Sink for ObjectSink {
    fn path(&self) -> PathBuf {
        PathBuf::from(self.remote.display())
    }

    fn schema(&self) -> Option<&SchemaRef> {
        self.staged.as_ref().and_then(|s| s.sink_ref().schema())
    }

    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        self.staged().start(schema)?;
        let Some(Staged::File { sink, split: false }) = &self.staged else {
            return Ok(());
        };
        let file = sink
            .open_handle()
            .expect("start opens the first file")
            .try_clone()
            .map_err(|e| self.error(e))?;
        let upload = self.wait(start_upload(
            &self.store,
            &self.remote.key,
            file,
            &self.remote,
        ));
        self.upload = Some(upload.map_err(|e| self.error(e))?);
        Ok(())
    }

    fn row_group_writers(&mut self, dir: usize) -> Result<RowGroupWriters> {
        self.staged().row_group_writers(dir)
    }

    fn append(&mut self, dir: usize, group: EncodedRowGroup) -> Result<RowGroupId> {
        let id = self.staged().append(dir, group)?;
        self.pump()?;
        Ok(id)
    }

    fn exclude(&mut self, group: RowGroupId) {
        self.staged().exclude(group);
    }

    fn route(&mut self, task: usize, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        self.staged().route(task, batch)
    }

    fn routes(&self) -> bool {
        self.staged.as_ref().is_some_and(|s| s.sink_ref().routes())
    }

    fn file_rows(&self, dir: usize) -> u64 {
        self.staged
            .as_ref()
            .map_or(0, |s| s.sink_ref().file_rows(dir))
    }

    fn file_row_limit(&self) -> Option<u64> {
        self.staged
            .as_ref()
            .and_then(|s| s.sink_ref().file_row_limit())
    }

    fn end_file(&mut self, dir: usize) {
        self.staged().end_file(dir);
    }

    fn commit(mut self: Box<Self>, metadata: Vec<(String, String)>) -> Result<OutputSummary> {
        let staged = self.staged.take().expect("committed once");
        let streams = staged.streams();
        let local = match staged {
            Staged::File { sink, .. } => sink.commit(metadata)?,
            Staged::Dataset(sink) => {
                let local = sink.commit(metadata)?;
                // The staged dataset is removed whatever happens next.
                let _cleanup = CleanupDir(local.path.clone());
                return self.commit_dataset(&local);
            }
        };
        // The staged files are removed whatever happens next.
        let _cleanup = Cleanup(local.files.iter().chain(&local.manifest).cloned().collect());
        if !streams {
            return self.commit_split(&local);
        }
        let done = match self.upload.take() {
            Some(upload) => self.wait(upload.finish()),
            // Not started (the schema was fixed at the commit): sent whole now.
            None => self.wait(upload_file(
                &self.store,
                &self.remote.key,
                &local.path,
                &self.remote,
            )),
        }
        .map_err(|e| self.error(e))?;
        Ok(OutputSummary {
            table_version: None,
            run_recorded: None,
            path: self.path(),
            files: vec![self.path()],
            manifest: None,
            bytes: done.bytes,
            remote: vec![RemoteObject {
                url: self.remote.display(),
                bytes: done.bytes,
                sha256: done.sha256,
                e_tag: done.e_tag,
            }],
            ..local.clone()
        })
    }
}

impl ObjectSink {
    /// Uploads a split output committed locally (see the module doc).
    fn commit_split(&self, local: &OutputSummary) -> Result<OutputSummary> {
        let name = |path: &Path| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let files = local
            .files
            .iter()
            .map(|file| Ok(self.remote.sibling(&name(file))))
            .collect::<Result<Vec<_>>>()?;
        let manifest = local
            .manifest
            .as_ref()
            .expect("a split output has a manifest");
        let (mut summary, _) = self.publish(local, files, self.remote.sibling(&name(manifest)))?;
        summary.path = summary
            .files
            .first()
            .cloned()
            .unwrap_or_else(|| self.path());
        self.remove_stale_parts(local.files.len());
        Ok(summary)
    }

    /// Uploads a dataset committed locally (see the module doc): its files go under the
    /// dataset's prefix with its `_SUCCESS`, and the previous run's files this run did
    /// not write are deleted last.
    fn commit_dataset(&self, local: &OutputSummary) -> Result<OutputSummary> {
        let under = |relative: &str| self.remote.under(relative).map_err(|e| self.error(e));
        let files = local
            .files
            .iter()
            .map(|file| {
                let relative = file.strip_prefix(&local.path).unwrap_or(file);
                under(&relative.to_string_lossy())
            })
            .collect::<Result<Vec<_>>>()?;
        let (mut summary, written) = self.publish(local, files, under(SUCCESS)?)?;
        summary.path = self.path();
        self.remove_stale_files(&written);
        Ok(summary)
    }

    /// Publishes an output of several files committed locally, the manifest last: the
    /// previous run's manifest is deleted, every file is uploaded to its key, then the
    /// manifest, the commit point. A failure deletes what this run uploaded. Returns the
    /// summary of what was uploaded and the files' keys.
    fn publish(
        &self,
        local: &OutputSummary,
        files: Vec<(ObjectPath, String)>,
        (manifest_key, manifest_url): (ObjectPath, String),
    ) -> Result<(OutputSummary, Vec<ObjectPath>)> {
        match self.wait(self.store.delete(&manifest_key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(e)),
        }
        let mut summary = OutputSummary {
            table_version: None,
            run_recorded: None,
            files: Vec::new(),
            manifest: Some(PathBuf::from(&manifest_url)),
            remote: Vec::new(),
            ..local.clone()
        };
        let mut sent = Vec::new();
        let undo = |sent: &[ObjectPath], e: &dyn std::fmt::Display| {
            for key in sent {
                let _ = self.wait(self.store.delete(key));
            }
            self.error(e)
        };
        for (file, (key, url)) in local.files.iter().zip(files) {
            let done = self
                .wait(upload_file(&self.store, &key, file, &self.remote))
                .map_err(|e| undo(&sent, &e))?;
            sent.push(key);
            summary.files.push(PathBuf::from(&url));
            summary.remote.push(RemoteObject {
                url,
                bytes: done.bytes,
                sha256: done.sha256,
                e_tag: done.e_tag,
            });
        }
        let manifest = local.manifest.as_ref().expect("published with a manifest");
        let text = std::fs::read(manifest).map_err(|e| Error::output(manifest, e))?;
        let (sha256, bytes) = (hex(&Sha256::digest(&text)), text.len() as u64);
        let put = self
            .wait(self.store.put(&manifest_key, PutPayload::from(text)))
            .map_err(|e| undo(&sent, &e))?;
        summary.bytes = summary.remote.iter().map(|o| o.bytes).sum();
        summary.remote.push(RemoteObject {
            url: manifest_url,
            bytes,
            sha256,
            e_tag: put.e_tag,
        });
        Ok((summary, sent))
    }

    /// Every object under `prefix` (recursively); what cannot be listed is left out.
    fn list(&self, prefix: ObjectPath) -> Vec<object_store::ObjectMeta> {
        let store = self.store.clone();
        self.wait(async move {
            store
                .list(Some(&prefix))
                .filter_map(|m| async move { m.ok() })
                .collect()
                .await
        })
    }

    /// Deletes the files of a previous run of the dataset that this run did not write:
    /// objects under its prefix named as a dataset's files are (`a=1/part-00000.parquet`).
    fn remove_stale_files(&self, written: &[ObjectPath]) {
        let depth = self.remote.key.parts().count();
        for meta in self.list(self.remote.key.clone()) {
            let relative: Vec<String> = meta
                .location
                .parts()
                .skip(depth)
                .map(|p| p.as_ref().to_owned())
                .collect();
            if is_dataset_file(&relative) && !written.contains(&meta.location) {
                let _ = self.wait(self.store.delete(&meta.location));
            }
        }
    }

    /// Deletes the previous run's parts numbered `from` and above.
    fn remove_stale_parts(&self, from: usize) {
        let output = Path::new(self.remote.key.filename().unwrap_or_default());
        for meta in self.list(self.remote.parent()) {
            let stale = meta
                .location
                .filename()
                .and_then(|name| part_index(output, name))
                .is_some_and(|n| n >= from);
            // `list` is recursive: only the output's own directory counts.
            if stale && meta.location.parts().count() == self.remote.key.parts().count() {
                let _ = self.wait(self.store.delete(&meta.location));
            }
        }
    }
}

impl Drop for ObjectSink {
    /// An upload not completed is aborted: the parts sent are deleted and no object
    /// appears.
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            let runtime = self.runtime.clone();
            if let Err(e) = block_on(&runtime, upload.parts.abort()) {
                tracing::warn!(
                    "{}: the unfinished upload could not be aborted ({}); the bucket's \
                     lifecycle rule for incomplete multipart uploads removes its parts",
                    self.remote.display(),
                    self.remote.scrub(&e)
                );
            }
        }
    }
}

/// Removes a staged directory, with all it holds, when dropped.
struct CleanupDir(PathBuf);

impl Drop for CleanupDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the staged files when dropped.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = self.0.first().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A client for the output's bucket: `object_store`'s for S3 and Azure, the JSON API
/// one (`gcs`) for GCS.
pub fn store(remote: &ObjectOutput) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    crate::source::tls::install_default_provider();
    match remote.cloud {
        Cloud::S3 => Ok(Arc::new(remote.s3()?)),
        Cloud::Azure => Ok(Arc::new(remote.azure()?)),
        Cloud::Gcs => {
            let (credentials, base) = remote.google()?;
            Ok(Arc::new(super::gcs::GcsJson::new(
                &base,
                &remote.bucket,
                credentials,
            )))
        }
    }
}

/// Reaches the output's bucket before any query runs: lists the object's directory, so
/// that missing credentials, a wrong key or a missing bucket fail the run at once. A
/// dataset's prefix must hold nothing, or a dataset (its `_SUCCESS`): a run replaces
/// no other objects.
pub async fn check(remote: &ObjectOutput, dataset: bool) -> Result<()> {
    let error = |e: &dyn std::fmt::Display| {
        Error::output(
            remote.display(),
            format!(
                "cannot reach bucket `{}`: {}",
                remote.bucket,
                remote.scrub(e)
            ),
        )
    };
    let store = store(remote).map_err(|e| error(&e))?;
    if !dataset {
        store
            .list_with_delimiter(Some(&remote.parent()))
            .await
            .map_err(|e| error(&e))?;
        return Ok(());
    }
    let listed = store
        .list_with_delimiter(Some(&remote.key))
        .await
        .map_err(|e| error(&e))?;
    let empty = listed.objects.is_empty() && listed.common_prefixes.is_empty();
    let manifest = remote.under(SUCCESS).map_err(|e| error(&e))?.0;
    if empty || store.head(&manifest).await.is_ok() {
        return Ok(());
    }
    Err(Error::output(
        remote.display(),
        "the prefix holds objects but no _SUCCESS manifest of a tributary dataset; a run \
         replaces only its own datasets: remove them or choose another output",
    ))
}
