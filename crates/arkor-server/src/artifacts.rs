//! Where artifacts are kept: the data directory alone (the default), or an S3-compatible
//! bucket with the data directory as its cache (`arkor server --artifacts s3://bucket/prefix`).
//!
//! With a bucket, every artifact is written to the data directory first, as without one, and
//! copied to the bucket before anyone is told it exists: a training event that names adapter
//! files is persisted only once they are in the bucket (checked against the event's SHA-256
//! while they stream), a dataset upload is answered once it is there, an export or an
//! evaluation is copied when it ends. Readers look in the data directory and fetch what is
//! missing there from the bucket, so a backend whose data directory was lost or replaced
//! still lists, serves, chats with and exports every artifact the bucket holds.
//!
//! Keys mirror the data directory under the prefix:
//! `<prefix>/jobs/<job id>/final/adapter_model.safetensors`,
//! `<prefix>/datasets/<org id>/<sha256>.jsonl`. Files outside the data directory (a local
//! dataset path on a loopback backend) are not artifacts and stay where they are.
//!
//! The bucket's endpoint, region and credentials come from the standard AWS variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...), read
//! by `object_store`. Requests are signed with `ring` and go through hyper, with rustls on
//! `ring` and the system's root certificates for HTTPS ([`Connector`]).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use arkor_protocol::job::ArtifactFile;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client;
use object_store::path::{Path as Key, PathPart};
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An error with its causes, each said once (object_store's messages already end with
/// their sources, which a plain `{:#}` would repeat).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if out.contains(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

/// The artifact store of a backend: its data directory, and the bucket behind it if any.
pub struct Artifacts {
    root: PathBuf,
    bucket: Option<Bucket>,
    /// Job folders fetched since this process started: from then on everything written to
    /// them goes through this backend, so the data directory has it.
    fetched: Mutex<HashSet<PathBuf>>,
}

struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
}

impl std::fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifacts")
            .field("root", &self.root)
            .field("bucket", &self.bucket.as_ref().map(|b| &b.url))
            .finish()
    }
}

impl Artifacts {
    /// Artifacts in `root` (the data directory) only.
    pub fn local(root: PathBuf) -> Artifacts {
        Artifacts { root, bucket: None, fetched: Mutex::default() }
    }

    /// Artifacts in the bucket `url` (`s3://bucket[/prefix]`), cached in `root`. Lists the
    /// prefix once, so a wrong endpoint, bucket or credential fails here rather than at the
    /// first checkpoint.
    pub async fn open(root: PathBuf, url: &str) -> anyhow::Result<Artifacts> {
        let Some(rest) = url.strip_prefix("s3://") else {
            bail!("invalid artifact store \"{url}\": expected s3://bucket or s3://bucket/prefix");
        };
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() {
            bail!("invalid artifact store \"{url}\": the bucket name is empty");
        }
        let prefix = Key::parse(prefix.trim_matches('/'))
            .with_context(|| format!("invalid artifact store \"{url}\": bad prefix"))?;
        let mut builder =
            AmazonS3Builder::from_env().with_bucket_name(name).with_http_connector(Connector);
        // `from_env` read AWS_ENDPOINT_URL (or AWS_ENDPOINT).
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        // A plain-HTTP endpoint (a bucket server on the LAN) is what the user asked for.
        if endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().with_context(|| format!("artifact store {url}"))?;
        let url = url.trim_end_matches('/').to_owned();
        let at = endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
        store.list_with_delimiter(Some(&prefix)).await.with_context(|| {
            format!(
                "cannot list the artifact store {url}{at}; check the bucket name and \
                 AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        })?;
        let bucket = Some(Bucket { store: Arc::new(store), prefix, url });
        Ok(Artifacts { root, bucket, fetched: Mutex::default() })
    }

    /// `s3://bucket/prefix` when artifacts go to a bucket.
    pub fn bucket_url(&self) -> Option<&str> {
        self.bucket.as_ref().map(|b| b.url.as_str())
    }

    /// The key of `path` in the bucket; `None` for a file outside the data directory.
    pub fn key(&self, path: &Path) -> Option<Key> {
        let bucket = self.bucket.as_ref()?;
        let rel = path.strip_prefix(&self.root).ok()?;
        let mut parts: Vec<PathPart<'static>> =
            bucket.prefix.parts().map(|p| PathPart::from(p.as_ref().to_owned())).collect();
        for c in rel.components() {
            match c {
                Component::Normal(s) => parts.push(PathPart::from(s.to_str()?.to_owned())),
                _ => return None,
            }
        }
        Some(Key::from_iter(parts))
    }

    /// Copies the files an event names (paths relative to `dir`, a job's folder) to the
    /// bucket, each checked against the event's size and SHA-256 as it streams.
    pub async fn put_files(&self, dir: &Path, files: &[ArtifactFile]) -> anyhow::Result<()> {
        for f in files {
            self.put(&dir.join(&f.pathname), Some((f.size, &f.sha256))).await?;
        }
        Ok(())
    }

    /// Copies every file under `dir` to the bucket (a task's folder when it ends).
    pub async fn put_dir(&self, dir: &Path) -> anyhow::Result<()> {
        if self.bucket.is_none() {
            return Ok(());
        }
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            let mut entries = tokio::fs::read_dir(&d).await?;
            while let Some(e) = entries.next_entry().await? {
                let name = e.file_name();
                // Temporary files of uploads in flight.
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let kind = e.file_type().await?;
                if kind.is_dir() {
                    pending.push(e.path());
                } else if kind.is_file() {
                    self.put(&e.path(), None).await?;
                }
            }
        }
        Ok(())
    }

    /// Copies one file to the bucket (a no-op without one, or for a file outside the data
    /// directory). With `expect`, a file whose bytes are not that size and SHA-256 is not
    /// stored and the answer is an error saying so.
    pub async fn put(&self, path: &Path, expect: Option<(u64, &str)>) -> anyhow::Result<()> {
        let (Some(bucket), Some(key)) = (&self.bucket, self.key(path)) else { return Ok(()) };
        let mut file =
            tokio::fs::File::open(path).await.with_context(|| format!("{}", path.display()))?;
        // Multipart above 10 MiB; the file never sits in memory whole.
        let mut writer = object_store::buffered::BufWriter::new(bucket.store.clone(), key.clone());
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let copied: anyhow::Result<()> = async {
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
                writer.write_all(&buf[..n]).await?;
            }
            Ok(())
        }
        .await;
        let sha = crate::util::hex(&hasher.finalize());
        let wrong = expect.filter(|(s, h)| (*s, *h) != (size, sha.as_str()));
        if copied.is_err() || wrong.is_some() {
            let _ = writer.abort().await;
        }
        copied.with_context(|| format!("copying {} to {}/{key}", path.display(), bucket.url))?;
        if let Some((s, h)) = wrong {
            bail!(
                "{} has {size} bytes and SHA-256 {sha}, expected {s} bytes and {h}; not copied \
                 to the artifact store",
                path.display()
            );
        }
        writer
            .shutdown()
            .await
            .with_context(|| format!("copying {} to {}/{key}", path.display(), bucket.url))?;
        Ok(())
    }

    /// Makes sure `path` is in the data directory, fetching it from the bucket when it is
    /// missing there; `false` when it is in neither.
    pub async fn fetch(&self, path: &Path) -> anyhow::Result<bool> {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Ok(true);
        }
        let (Some(bucket), Some(key)) = (&self.bucket, self.key(path)) else { return Ok(false) };
        match bucket.store.get(&key).await {
            Ok(got) => {
                self.download(bucket, &key, got, path).await?;
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("fetching {}/{key}", bucket.url)),
        }
    }

    /// Fetches the uploaded dataset a job config names, if the data directory lost it (a
    /// local path outside the data directory is left alone).
    pub async fn fetch_dataset(
        &self,
        config: &arkor_protocol::job::JobConfig,
    ) -> anyhow::Result<()> {
        if let Some(arkor_protocol::job::DatasetSource::Jsonl { path }) = &config.dataset_source {
            self.fetch(Path::new(path)).await?;
        }
        Ok(())
    }

    /// Fetches a job's folder `dir` from the bucket, once per process, before it is listed,
    /// exported or chatted with: every object under its key that the data directory lacks,
    /// except the files of exports (merged models run to gigabytes; a download fetches the
    /// one it serves), whose records are fetched.
    pub async fn fetch_job(&self, dir: &Path) -> anyhow::Result<()> {
        if self.bucket.is_none() || self.fetched.lock().expect("fetched lock").contains(dir) {
            return Ok(());
        }
        self.fetch_dir(dir, |rel| match rel {
            ["exports", _, rest @ ..] => rest == [crate::tasks::TASK_FILE],
            _ => true,
        })
        .await?;
        self.fetched.lock().expect("fetched lock").insert(dir.to_path_buf());
        Ok(())
    }

    /// Fetches the objects under `dir`'s key that the data directory lacks and `keep` takes
    /// (given the key's parts below `dir`). Files already there are kept.
    pub async fn fetch_dir(
        &self,
        dir: &Path,
        keep: impl Fn(&[&str]) -> bool,
    ) -> anyhow::Result<()> {
        let (Some(bucket), Some(prefix)) = (&self.bucket, self.key(dir)) else { return Ok(()) };
        let below = prefix.parts().count();
        let skip = bucket.prefix.parts().count();
        let mut listed = bucket.store.list(Some(&prefix));
        while let Some(meta) = listed.next().await {
            let meta = meta.with_context(|| format!("listing {}/{prefix}", bucket.url))?;
            let parts: Vec<PathPart<'_>> = meta.location.parts().collect();
            let parts: Vec<&str> = parts.iter().map(|p| p.as_ref()).collect();
            if parts.len() <= below
                || parts.iter().any(|p| p.is_empty() || p.starts_with('.') || p.contains('\\'))
            {
                bail!("the artifact store holds an unexpected key {}", meta.location);
            }
            if !keep(&parts[below..]) {
                continue;
            }
            let local = parts[skip..].iter().fold(self.root.clone(), |p, part| p.join(part));
            if tokio::fs::try_exists(&local).await.unwrap_or(false) {
                continue;
            }
            let got = bucket
                .store
                .get(&meta.location)
                .await
                .with_context(|| format!("fetching {}/{}", bucket.url, meta.location))?;
            self.download(bucket, &meta.location, got, &local).await?;
        }
        Ok(())
    }

    /// Streams an object into `path` through a temporary file beside it.
    async fn download(
        &self,
        bucket: &Bucket,
        key: &Key,
        got: object_store::GetResult,
        path: &Path,
    ) -> anyhow::Result<()> {
        let parent = path.parent().context("no parent folder")?;
        tokio::fs::create_dir_all(parent).await?;
        let tmp = parent.join(format!(".fetch-{}", crate::util::random_hex(8)));
        let written: anyhow::Result<()> = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?).await?;
            }
            file.flush().await?;
            file.sync_all().await?;
            Ok(())
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.context(format!("fetching {}/{key}", bucket.url)));
        }
        tokio::fs::rename(&tmp, path).await?;
        Ok(())
    }
}

/// object_store's HTTP client: hyper, with rustls on `ring` for HTTPS. (object_store's own
/// reqwest client would need a TLS reqwest, and with it a crypto provider, in every crate of
/// the build.) Timeouts and retries are object_store's, around each call.
#[derive(Debug)]
struct Connector;

type Hyper = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    client::HttpRequestBody,
>;

impl client::HttpConnector for Connector {
    fn connect(&self, _: &client::ClientOptions) -> object_store::Result<client::HttpClient> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?
            .https_or_http()
            .enable_http1()
            .build();
        let executor = hyper_util::rt::TokioExecutor::new();
        Ok(client::HttpClient::new(Service(
            hyper_util::client::legacy::Client::builder(executor).build(tls),
        )))
    }
}

#[derive(Debug)]
struct Service(Hyper);

#[async_trait::async_trait]
impl client::HttpService for Service {
    async fn call(
        &self,
        req: client::HttpRequest,
    ) -> Result<client::HttpResponse, client::HttpError> {
        use client::{HttpError, HttpErrorKind};
        use http_body_util::BodyExt;
        let resp = self.0.request(req).await.map_err(|e| {
            let kind = if e.is_connect() { HttpErrorKind::Connect } else { HttpErrorKind::Request };
            HttpError::new(kind, e)
        })?;
        let (parts, body) = resp.into_parts();
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e));
        Ok(client::HttpResponse::from_parts(parts, client::HttpResponseBody::new(body)))
    }
}
