//! Resolution of `ollama:NAME[:TAG]` references to the GGUF file in Ollama's local model store.
//!
//! A name is `[host/][namespace/]model[:tag]` (defaults `registry.ollama.ai`, `library`,
//! `latest`, with the part rules of Ollama's `types/model/name.go`); its manifest lives at
//! `<models>/manifests/<host>/<namespace>/<model>/<tag>` and names the blobs it is made of,
//! stored at `<models>/blobs/sha256-<hex>`. The blob of the `application/vnd.ollama.image.model`
//! layer is a plain GGUF file, and its path is the answer. This module only reads the store: it
//! never pulls, writes, locks or verifies checksums (Ollama does that when it downloads), and it
//! refuses models the single model file does not fully describe (adapters, vision projectors)
//! or that are not GGUF at all (Ollama's safetensors-style `tensor` layers).

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The prefix that marks an Ollama reference.
pub const PREFIX: &str = "ollama:";

const DEFAULT_HOST: &str = "registry.ollama.ai";
const DEFAULT_NAMESPACE: &str = "library";
const DEFAULT_TAG: &str = "latest";

/// Media type of the layer holding the GGUF model.
pub const MODEL_MEDIA_TYPE: &str = "application/vnd.ollama.image.model";
/// Media type of the layers of Ollama's safetensors-style (non-GGUF) models.
const TENSOR_MEDIA_TYPE: &str = "application/vnd.ollama.image.tensor";
/// Layers that change what Ollama runs beyond the model file.
const REFUSED_MEDIA_TYPES: [&str; 2] =
    ["application/vnd.ollama.image.adapter", "application/vnd.ollama.image.projector"];

/// Why an Ollama reference could not be resolved. `reference` is the name as written, without
/// the `ollama:` prefix.
#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    /// The name does not follow Ollama's name rules.
    #[error(
        "invalid ollama model name \"{reference}\": {reason} (expected [host/][namespace/]model[:tag])"
    )]
    InvalidName {
        /// The name as written.
        reference: String,
        /// Which part is wrong and how.
        reason: String,
    },
    /// No manifest for the name.
    #[error(
        "ollama model {reference} is not installed: no manifest at {}; run `ollama pull {reference}`",
        manifest.display()
    )]
    NotInstalled {
        /// The name as written.
        reference: String,
        /// The manifest path looked for.
        manifest: PathBuf,
    },
    /// The manifest exists but could not be read.
    #[error("failed to read the manifest of ollama model {reference} at {}: {source}", manifest.display())]
    ReadManifest {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The manifest is not JSON of the expected shape.
    #[error(
        "the manifest of ollama model {reference} at {} is not a valid manifest JSON: {source}",
        manifest.display()
    )]
    InvalidManifest {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
        /// The serde error (line and column).
        source: serde_json::Error,
    },
    /// A safetensors-style model: its weights are `tensor` layers, not one GGUF file.
    #[error(
        "ollama model {reference} is stored as `{TENSOR_MEDIA_TYPE}` layers (safetensors-style), \
         not as a GGUF file: unsupported (manifest {}); use the model's Hugging Face repo instead",
        manifest.display()
    )]
    NotGgufModel {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
    },
    /// An adapter or projector layer: the model layer alone is not what Ollama runs.
    #[error(
        "ollama model {reference} has a `{media_type}` layer (manifest {}): the model layer alone \
         is not what Ollama runs for it, so it is refused; use a model without adapters or \
         projectors",
        manifest.display()
    )]
    ExtraLayer {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
        /// The refused layer's media type.
        media_type: String,
    },
    /// No (or more than one) `application/vnd.ollama.image.model` layer.
    #[error(
        "ollama model {reference} has {count} `{MODEL_MEDIA_TYPE}` layers in its manifest {}, \
         expected 1 (layers: {media_types})",
        manifest.display()
    )]
    ModelLayerCount {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
        /// How many model layers there are.
        count: usize,
        /// The media types of all layers, comma-separated.
        media_types: String,
    },
    /// The model layer's digest is not `sha256:<64 hex digits>`.
    #[error(
        "ollama model {reference} has model layer digest \"{digest}\" in its manifest {}, \
         expected sha256:<64 hex digits>",
        manifest.display()
    )]
    InvalidDigest {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
        /// The digest found.
        digest: String,
    },
    /// The manifest names a blob that is not in the store.
    #[error(
        "the model blob of ollama model {reference} is missing: no file at {} (named by {}); \
         run `ollama pull {reference}` again",
        blob.display(),
        manifest.display()
    )]
    BlobMissing {
        /// The name as written.
        reference: String,
        /// The manifest path.
        manifest: PathBuf,
        /// The blob path looked for.
        blob: PathBuf,
    },
    /// The blob exists but could not be read.
    #[error("failed to read the model blob of ollama model {reference} at {}: {source}", blob.display())]
    ReadBlob {
        /// The name as written.
        reference: String,
        /// The blob path.
        blob: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The blob does not start with the GGUF magic.
    #[error(
        "the model blob of ollama model {reference} at {} is not a GGUF file: expected magic \
         \"GGUF\", got {got}",
        blob.display()
    )]
    NotGguf {
        /// The name as written.
        reference: String,
        /// The blob path.
        blob: PathBuf,
        /// The first bytes found, escaped, or the file's length when shorter than the magic.
        got: String,
    },
}

/// A fully qualified Ollama model name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OllamaName {
    /// Registry host, default `registry.ollama.ai`; may carry a `:port`.
    pub host: String,
    /// Namespace, default `library`.
    pub namespace: String,
    /// Model name.
    pub model: String,
    /// Tag, default `latest`.
    pub tag: String,
}

impl std::fmt::Display for OllamaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}:{}", self.host, self.namespace, self.model, self.tag)
    }
}

impl OllamaName {
    /// Parses `[host/][namespace/]model[:tag]` (an optional `ollama:` prefix and `http(s)://`
    /// before the host are dropped) and fills in the defaults.
    pub fn parse(reference: &str) -> Result<Self, OllamaError> {
        let name = reference.strip_prefix(PREFIX).unwrap_or(reference);
        let invalid =
            |reason: String| OllamaError::InvalidName { reference: name.to_owned(), reason };
        let rest =
            name.strip_prefix("https://").or_else(|| name.strip_prefix("http://")).unwrap_or(name);
        // A tag cannot contain '/', so a ':' after the last '/' starts the tag; one before it
        // is a host's port.
        let (path, tag) = match (rest.rfind(':'), rest.rfind('/')) {
            (Some(colon), slash) if slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (host, namespace, model) = match parts[..] {
            [model] => (None, None, model),
            [namespace, model] => (None, Some(namespace), model),
            [host, namespace, model] => (Some(host), Some(namespace), model),
            _ => return Err(invalid(format!("{} '/'-separated parts", parts.len()))),
        };
        let checked = |kind: Part, value: Option<&str>, default: &str| match value {
            None => Ok(default.to_owned()),
            Some(v) => kind.check(v).map(|()| v.to_owned()).map_err(&invalid),
        };
        Ok(Self {
            host: checked(Part::Host, host, DEFAULT_HOST)?,
            namespace: checked(Part::Namespace, namespace, DEFAULT_NAMESPACE)?,
            model: checked(Part::Model, Some(model), "")?,
            tag: checked(Part::Tag, tag, DEFAULT_TAG)?,
        })
    }

    /// `<models>/manifests/<host>/<namespace>/<model>/<tag>`.
    pub fn manifest_path(&self, models_dir: &Path) -> PathBuf {
        models_dir
            .join("manifests")
            .join(&self.host)
            .join(&self.namespace)
            .join(&self.model)
            .join(&self.tag)
    }
}

#[derive(Clone, Copy)]
enum Part {
    Host,
    Namespace,
    Model,
    Tag,
}

impl Part {
    /// Ollama's `isValidPart`: a letter, digit or `_` first, then those plus `-`, `_`, `.`
    /// (not in a namespace) and `:` (host only). Rules out `.`, `..` and any separator.
    fn check(self, s: &str) -> Result<(), String> {
        let (what, max) = match self {
            Self::Host => ("host", 350),
            Self::Namespace => ("namespace", 80),
            Self::Model => ("model", 80),
            Self::Tag => ("tag", 80),
        };
        if s.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        if s.len() > max {
            return Err(format!("the {what} is {} bytes long, at most {max} allowed", s.len()));
        }
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let ok = s.chars().enumerate().all(|(i, c)| {
            word(c)
                || i > 0
                    && (c == '-'
                        || c == '.' && !matches!(self, Self::Namespace)
                        || c == ':' && matches!(self, Self::Host))
        });
        if ok {
            return Ok(());
        }
        let allowed = match self {
            Self::Host => "letters, digits, '_', '-', '.' and ':'",
            Self::Namespace => "letters, digits, '_' and '-'",
            Self::Model | Self::Tag => "letters, digits, '_', '-' and '.'",
        };
        Err(format!(
            "the {what} \"{s}\" must start with a letter, digit or '_' and contain only {allowed}"
        ))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
}

/// Whether `s` is an Ollama reference (`ollama:...`).
pub fn is_ollama_ref(s: &str) -> bool {
    s.starts_with(PREFIX)
}

/// The GGUF blob of the Ollama model `reference` (`ollama:NAME[:TAG]`, prefix optional) in the
/// store at `models_dir`.
pub fn resolve_ollama(reference: &str, models_dir: &Path) -> Result<PathBuf, OllamaError> {
    let name = OllamaName::parse(reference)?;
    let reference = reference.strip_prefix(PREFIX).unwrap_or(reference).to_owned();
    let manifest = name.manifest_path(models_dir);
    let text = match std::fs::read(&manifest) {
        Ok(text) => text,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Err(OllamaError::NotInstalled { reference, manifest });
        }
        Err(source) => return Err(OllamaError::ReadManifest { reference, manifest, source }),
    };
    let parsed: Manifest = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(source) => return Err(OllamaError::InvalidManifest { reference, manifest, source }),
    };
    if parsed.layers.iter().any(|l| l.media_type == TENSOR_MEDIA_TYPE) {
        return Err(OllamaError::NotGgufModel { reference, manifest });
    }
    if let Some(l) = parsed.layers.iter().find(|l| REFUSED_MEDIA_TYPES.contains(&&*l.media_type)) {
        let media_type = l.media_type.clone();
        return Err(OllamaError::ExtraLayer { reference, manifest, media_type });
    }
    let models: Vec<&Layer> =
        parsed.layers.iter().filter(|l| l.media_type == MODEL_MEDIA_TYPE).collect();
    let [layer] = models[..] else {
        let media_types: Vec<&str> = parsed.layers.iter().map(|l| &*l.media_type).collect();
        return Err(OllamaError::ModelLayerCount {
            reference,
            manifest,
            count: models.len(),
            media_types: if media_types.is_empty() {
                "none".into()
            } else {
                media_types.join(", ")
            },
        });
    };
    // Ollama's `BlobsPath` accepts `sha256[:-]<64 hex>` only.
    let hex = layer.digest.strip_prefix("sha256:").or_else(|| layer.digest.strip_prefix("sha256-"));
    let Some(hex) = hex.filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        let digest = layer.digest.clone();
        return Err(OllamaError::InvalidDigest { reference, manifest, digest });
    };
    let blob = models_dir.join("blobs").join(format!("sha256-{hex}"));
    let mut file = match std::fs::File::open(&blob) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(OllamaError::BlobMissing { reference, manifest, blob });
        }
        Err(source) => return Err(OllamaError::ReadBlob { reference, blob, source }),
    };
    let mut magic = Vec::with_capacity(4);
    if let Err(source) = file.by_ref().take(4).read_to_end(&mut magic) {
        return Err(OllamaError::ReadBlob { reference, blob, source });
    }
    if magic != b"GGUF" {
        let got = if magic.len() < 4 {
            format!("a {}-byte file", magic.len())
        } else {
            format!("\"{}\"", magic.escape_ascii())
        };
        return Err(OllamaError::NotGguf { reference, blob, got });
    }
    Ok(blob)
}

/// [`resolve_ollama`] in the store named by the environment ([`crate::ollama_models_dir`]).
pub fn resolve_ollama_from_env(reference: &str) -> Result<PathBuf, OllamaError> {
    resolve_ollama(reference, &crate::ollama_models_dir())
}
