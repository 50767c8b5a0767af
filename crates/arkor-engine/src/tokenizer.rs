//! Tokenizer, special tokens and chat template of a model directory.
//!
//! [`TextTokenizer`] wraps a Hugging Face `tokenizer.json` with what the rest of the
//! engine needs from the neighbouring files: the chat template and special tokens from
//! `tokenizer_config.json`, and end-of-sequence ids from `generation_config.json` and
//! `config.json`. Chat templates are Jinja, rendered with minijinja plus the Python string
//! methods (`strip`, `startswith`, `split`, ...) and helpers (`raise_exception`,
//! `strftime_now`) that templates shipped on the Hub rely on.
//!
//! [`DecodeStream`] turns generated ids into text incrementally without ever emitting a
//! broken UTF-8 sequence. [`write_byte_level_tokenizer`] writes the deterministic
//! byte-level tokenizer of the built-in tiny model and test fixtures.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading a tokenizer or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A tokenizer file is missing.
    #[error("{dir}: no {file}: not a Hugging Face model directory with a tokenizer")]
    Missing {
        /// The model directory.
        dir: PathBuf,
        /// The missing file name.
        file: &'static str,
    },
    /// A file exists but could not be read or parsed.
    #[error("invalid {path}: {message}")]
    InvalidFile {
        /// The offending file.
        path: PathBuf,
        /// What was wrong, naming the field.
        message: String,
    },
    /// Encoding or decoding failed inside the tokenizers library.
    #[error("tokenizer failed: {0}")]
    Tokenize(String),
    /// The chat template failed to compile or to render.
    #[error("chat template of {dir}: {message}")]
    Template {
        /// The model directory whose template failed.
        dir: PathBuf,
        /// The Jinja error, including `raise_exception` messages from the template.
        message: String,
    },
    /// Writing a tokenizer failed.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// One chat message with an OpenAI-style role (`system`, `user`, `assistant`, `tool`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: String,
    /// The text.
    pub content: String,
}

/// ChatML, used when a model ships no chat template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A tokenizer with its model's special tokens and chat template.
pub struct TextTokenizer {
    dir: PathBuf,
    inner: tokenizers::Tokenizer,
    template: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    eos_ids: Vec<u32>,
    pad_id: u32,
    /// The chat template compiled once, on the first render (a dataset renders it three
    /// times a row).
    compiled: std::sync::OnceLock<Result<ChatTemplate, String>>,
    /// llguidance's view of the vocabulary, built on the first constrained reply.
    grammars: std::sync::Mutex<Option<std::sync::Arc<crate::constrain::Grammars>>>,
}

#[derive(Default, Deserialize)]
struct TokenizerConfig {
    chat_template: Option<ChatTemplateField>,
    bos_token: Option<TokenField>,
    eos_token: Option<TokenField>,
    pad_token: Option<TokenField>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChatTemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TokenField {
    Text(String),
    Object { content: String },
}

impl TokenField {
    fn into_text(self) -> String {
        match self {
            TokenField::Text(s) | TokenField::Object { content: s } => s,
        }
    }
}

#[derive(Default, Deserialize)]
struct EosOnly {
    eos_token_id: Option<crate::models::OneOrMany>,
}

fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, TokenizerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| TokenizerError::InvalidFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => {
            Err(TokenizerError::InvalidFile { path: path.to_path_buf(), message: e.to_string() })
        }
    }
}

impl TextTokenizer {
    /// Reads `tokenizer.json` and the optional `tokenizer_config.json`,
    /// `generation_config.json` and `config.json` of a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let file = dir.join("tokenizer.json");
        if !file.is_file() {
            return Err(TokenizerError::Missing { dir: dir.to_path_buf(), file: "tokenizer.json" });
        }
        let inner = tokenizers::Tokenizer::from_file(&file).map_err(|e| {
            TokenizerError::InvalidFile { path: file.clone(), message: e.to_string() }
        })?;
        let config: TokenizerConfig = read_json(&dir.join("tokenizer_config.json"))?;
        let template = match config.chat_template {
            Some(ChatTemplateField::One(t)) => t,
            Some(ChatTemplateField::Named(list)) => {
                let default = list.iter().position(|t| t.name == "default").unwrap_or(0);
                list.into_iter().nth(default).map(|t| t.template).unwrap_or_default()
            }
            None => {
                // Newer checkpoints keep the template in its own file.
                std::fs::read_to_string(dir.join("chat_template.jinja"))
                    .unwrap_or_else(|_| CHATML_TEMPLATE.to_owned())
            }
        };
        let bos_token = config.bos_token.map(TokenField::into_text);
        let eos_token = config.eos_token.map(TokenField::into_text);
        let mut eos_ids = vec![];
        let generation: EosOnly = read_json(&dir.join("generation_config.json"))?;
        eos_ids.extend(crate::models::OneOrMany::into_vec(generation.eos_token_id));
        if let Some(id) = eos_token.as_deref().and_then(|t| inner.token_to_id(t)) {
            eos_ids.push(id);
        }
        if eos_ids.is_empty() {
            let model: EosOnly = read_json(&dir.join("config.json"))?;
            eos_ids.extend(crate::models::OneOrMany::into_vec(model.eos_token_id));
        }
        let mut seen = std::collections::HashSet::new();
        eos_ids.retain(|id| seen.insert(*id));
        let pad_id = config
            .pad_token
            .map(TokenField::into_text)
            .and_then(|t| inner.token_to_id(&t))
            .or(eos_ids.first().copied())
            .unwrap_or(0);
        Ok(Self {
            dir: dir.to_path_buf(),
            inner,
            template,
            bos_token,
            eos_token,
            eos_ids,
            pad_id,
            compiled: Default::default(),
            grammars: Default::default(),
        })
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's post-processor
    /// (e.g. a leading BOS). Chat-rendered text must use `false`: templates write their own.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        Ok(self.encode_with_offsets(text, add_special_tokens)?.0)
    }

    /// Token ids and the byte range of `text` each token came from.
    pub fn encode_with_offsets(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<(Vec<u32>, Vec<(usize, usize)>), TokenizerError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| TokenizerError::Tokenize(e.to_string()))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Tokenize(e.to_string()))
    }

    /// End-of-sequence ids: `generation_config.json` first, then the tokenizer's EOS.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The padding id (pad token, else the first EOS id).
    pub fn pad_token_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The chat template source (ChatML when the model ships none).
    pub fn chat_template(&self) -> &str {
        &self.template
    }

    /// Renders `messages` with the model's chat template (ChatML when it has none).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        self.render_conversation(messages, None, add_generation_prompt)
    }

    /// Renders any serialisable list of messages (OpenAI shape: `tool_calls` with object
    /// `arguments`, `tool_call_id`) with the template's `tools` variable set to `tools`
    /// (OpenAI function tools) when given, as transformers' `apply_chat_template` does.
    pub fn render_conversation<M: Serialize + ?Sized>(
        &self,
        messages: &M,
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        self.render_conversation_with(messages, tools, add_generation_prompt, &Default::default())
    }

    /// [`TextTokenizer::render_conversation`] with more template variables (transformers'
    /// `apply_chat_template` keyword arguments, e.g. `enable_thinking`); the variables arkor
    /// sets itself ([`TEMPLATE_VARIABLES`]) win.
    pub fn render_conversation_with<M: Serialize + ?Sized>(
        &self,
        messages: &M,
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TokenizerError> {
        let context = minijinja::context! {
            messages => minijinja::value::Serde(messages),
            tools => tools.map(minijinja::value::Serde),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
            ..minijinja::Value::from(minijinja::value::Serde(kwargs))
        };
        self.compiled_template()
            .and_then(|t| t.render(&context))
            .map_err(|message| TokenizerError::Template { dir: self.dir.clone(), message })
    }

    /// Whether the chat template reads the `tools` variable (it can show tools to the model).
    pub fn template_uses_tools(&self) -> bool {
        self.compiled_template().is_ok_and(|t| t.variables().contains("tools"))
    }

    fn compiled_template(&self) -> Result<&ChatTemplate, String> {
        self.compiled
            .get_or_init(|| ChatTemplate::new(self.template.clone()))
            .as_ref()
            .map_err(String::clone)
    }

    /// The constrained-decoding environment for a model with `n_vocab` logits, built once.
    pub(crate) fn grammars(
        &self,
        n_vocab: usize,
    ) -> crate::Result<std::sync::Arc<crate::constrain::Grammars>> {
        let mut cached = self.grammars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = cached.as_ref().filter(|g| g.n_vocab() == n_vocab) {
            return Ok(g.clone());
        }
        let g = std::sync::Arc::new(crate::constrain::Grammars::new(
            &self.inner,
            &self.eos_ids,
            n_vocab,
        )?);
        *cached = Some(g.clone());
        Ok(g)
    }

    /// An incremental decoder for streaming generation.
    pub fn decode_stream(&self) -> DecodeStream<'_> {
        DecodeStream { tokenizer: self, ids: vec![], prefix_len: 0 }
    }
}

/// The variables arkor gives every chat template itself.
pub const TEMPLATE_VARIABLES: [&str; 5] =
    ["messages", "tools", "add_generation_prompt", "bos_token", "eos_token"];

/// Renders a chat template with `context` as its variables (transformers passes `messages`,
/// `tools`, `add_generation_prompt`, the special tokens and any `chat_template_kwargs` such
/// as Qwen3's `enable_thinking`), in transformers' template environment; the error is
/// minijinja's message with its causes.
pub fn render_chat_template<C: Serialize + ?Sized>(
    template: &str,
    context: &C,
) -> Result<String, String> {
    ChatTemplate::new(template.to_owned())?.render(context)
}

/// A chat template parsed once in transformers' template environment, rendered many times.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
}

impl ChatTemplate {
    /// Parses `source`; a syntax error is minijinja's message with its causes.
    pub fn new(source: String) -> Result<ChatTemplate, String> {
        let mut env = template_env();
        env.add_template_owned("chat", source).map_err(|e| error_chain(&e))?;
        Ok(ChatTemplate { env })
    }

    /// Renders the template with `context` as its variables.
    pub fn render<C: Serialize + ?Sized>(&self, context: &C) -> Result<String, String> {
        self.template().render(minijinja::value::Serde(context)).map_err(|e| error_chain(&e))
    }

    /// The variables the template reads that it does not set itself.
    pub fn variables(&self) -> std::collections::HashSet<String> {
        self.template().undeclared_variables(false)
    }

    fn template(&self) -> minijinja::Template<'_, '_> {
        self.env.get_template("chat").expect("added in ChatTemplate::new")
    }
}

/// minijinja's message followed by each of its causes.
fn error_chain(e: &minijinja::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

/// minijinja set up like transformers' template environment (`trim_blocks`,
/// `lstrip_blocks`): Python string methods,
/// `raise_exception`, `strftime_now`, and a `tojson` that writes what Python's
/// `json.dumps` writes (`", "` and `": "` separators, `indent`, `sort_keys`, non-ASCII
/// kept), so tool schemas reach the model exactly as transformers renders them.
fn template_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // transformers' environment: a block tag's newline and its line's leading whitespace
    // are not output (templates written without `-` rely on it).
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |format: String| -> String { strftime_now(&format) });
    env.add_filter("tojson", python_tojson);
    env
}

fn python_tojson(
    value: minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
    })?;
    let mut out = String::new();
    python_dumps(
        &json,
        indent,
        sort_keys.unwrap_or(false),
        ensure_ascii.unwrap_or(false),
        0,
        &mut out,
    );
    Ok(minijinja::Value::from_safe_string(out))
}

/// Python's `json.dumps(value, indent=..., sort_keys=..., ensure_ascii=...)`.
pub(crate) fn python_dumps(
    v: &serde_json::Value,
    indent: Option<usize>,
    sort_keys: bool,
    ensure_ascii: bool,
    depth: usize,
    out: &mut String,
) {
    use serde_json::Value;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                python_dumps(item, indent, sort_keys, ensure_ascii, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                python_string(k, ensure_ascii, out);
                out.push_str(": ");
                python_dumps(item, indent, sort_keys, ensure_ascii, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        Value::String(s) => python_string(s, ensure_ascii, out),
        other => out.push_str(&other.to_string()),
    }
}

fn python_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A date for templates that print today's date (Llama 3.x); days since the epoch are
/// turned into a calendar date without a time-zone database (UTC).
fn strftime_now(format: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const FULL: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format
        .replace("%d", &format!("{d:02}"))
        .replace("%m", &format!("{m:02}"))
        .replace("%Y", &y.to_string())
        .replace("%b", MONTHS[(m - 1) as usize])
        .replace("%B", FULL[(m - 1) as usize])
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Decodes generated ids incrementally.
///
/// It decodes the text after a fixed prefix of earlier ids and emits the part that is
/// new, holding it back while it ends in an incomplete UTF-8 sequence (`U+FFFD`). Decoding
/// with the prefix keeps tokenizers whose output depends on the previous token (leading
/// spaces in SentencePiece) correct.
pub struct DecodeStream<'a> {
    tokenizer: &'a TextTokenizer,
    ids: Vec<u32>,
    prefix_len: usize,
}

impl DecodeStream<'_> {
    /// Adds one id; returns newly completed text, if any.
    pub fn step(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        self.flush_complete(false)
    }

    /// Returns whatever is still held back (possibly an incomplete character as U+FFFD).
    pub fn flush(&mut self) -> Result<Option<String>, TokenizerError> {
        self.flush_complete(true)
    }

    fn flush_complete(&mut self, force: bool) -> Result<Option<String>, TokenizerError> {
        if self.ids.len() == self.prefix_len {
            return Ok(None);
        }
        let start = self.prefix_len.saturating_sub(4);
        let before = self.tokenizer.decode(&self.ids[start..self.prefix_len], true)?;
        let after = self.tokenizer.decode(&self.ids[start..], true)?;
        if !force && after.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        if after.len() < before.len() || !after.is_char_boundary(before.len()) {
            return Ok(None);
        }
        let new = after[before.len()..].to_owned();
        self.prefix_len = self.ids.len();
        Ok((!new.is_empty()).then_some(new))
    }
}

/// Writes the deterministic byte-level BPE tokenizer of the built-in tiny model into
/// `dir` (`tokenizer.json` and `tokenizer_config.json` with a ChatML template) and
/// returns its vocabulary size.
///
/// The vocabulary is the 256 bytes (in the GPT-2 printable alphabet), a fixed list of
/// merges of common English pairs, and the special tokens `<|endoftext|>`,
/// `<|im_start|>` and `<|im_end|>`.
pub fn write_byte_level_tokenizer(dir: &Path) -> Result<usize, TokenizerError> {
    let alphabet = bytes_to_unicode();
    let mut vocab: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    let mut merges: Vec<(String, String)> = vec![];
    for pair in MERGES {
        let (a, b) = pair.split_once('|').expect("merge has two parts");
        let (a, b) = (to_alphabet(a, &alphabet), to_alphabet(b, &alphabet));
        let merged = format!("{a}{b}");
        if vocab.contains(&merged) {
            continue;
        }
        vocab.push(merged);
        merges.push((a, b));
    }
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    let first_special = vocab.len();
    let vocab_json: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(i, t)| (t.clone(), i.into())).collect();
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": first_special + i, "content": s, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab_json,
            "merges": merges.iter().map(|(a, b)| vec![a.clone(), b.clone()]).collect::<Vec<_>>(),
        },
    });
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "model_max_length": 2048,
        "chat_template": CHATML_TEMPLATE,
    });
    for (name, value) in [("tokenizer.json", tokenizer), ("tokenizer_config.json", config)] {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&value).expect("json serialises") + "\n";
        std::fs::write(&path, text).map_err(|source| TokenizerError::Write { path, source })?;
    }
    Ok(first_special + specials.len())
}

fn to_alphabet(s: &str, alphabet: &[char]) -> String {
    s.bytes().map(|b| alphabet[b as usize]).collect()
}

/// GPT-2's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("valid char")
            } else {
                extra += 1;
                char::from_u32(255 + extra).expect("valid char")
            }
        })
        .collect()
}

/// Merges of common English pairs as `left|right` (spaces are real spaces), in priority
/// order; each side is a byte or an earlier merge.
const MERGES: &[&str] = &[
    "t|h", " |t", "h|e", "i|n", "e|r", "a|n", "r|e", "o|n", " t|h", "e|n", "o|r", "e|s", "a|t",
    " |a", "o|u", "i|s", "i|t", "a|l", "e|d", " |s", "a|r", " |w", "l|e", "o|f", " |o", "n|g",
    "in|g", "s|t", "n|d", "th|e", " th|e", " |i", " |c", " |b", " |f", " |p", " |m", "o|m", "l|l",
    "r|o", "c|h", "a|s", " |y", " y|ou", " |d", " |h", "v|e", "l|y", "e|c", "u|s", "c|e",
];

#[cfg(test)]
mod tests;
