//! Constrained decoding: replies that match a JSON schema, a regular expression, one of a
//! list of choices, or a Lark grammar.
//!
//! A [`Constraint`] is compiled by llguidance into a parser over the model's tokens. Per
//! generated token the parser gives the set of tokens that keep the reply inside the
//! language (the mask); every other logit is set to minus infinity before sampling, and the
//! chosen token is then fed back to the parser. End-of-sequence is allowed only where the
//! reply is complete, and generation ends as soon as the grammar admits nothing more.
//!
//! The token environment llguidance needs (every token's bytes, the end-of-sequence ids,
//! the width of the LM head) is built once per tokenizer from its `tokenizer.json` and
//! kept by [`TextTokenizer`]; building it takes about a second on a 49k vocabulary.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{self, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use serde_json::Value;

use crate::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// Whitespace allowed between JSON tokens when the caller does not say: up to two spaces
/// or tabs (`", "`, `": "`), or a line break and up to 12 spaces or tabs of indentation
/// (pretty-printed JSON six levels deep at two spaces). Unbounded whitespace lets a weak
/// model pad a reply with blanks until `max_tokens` cuts it.
pub const DEFAULT_JSON_WHITESPACE: &str = r"(\x0A[\x20\x09]{0,12}|[\x20\x09]{0,2})";

/// What a reply must match.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// A JSON value valid against a JSON schema (`{"type": "object"}` for any object).
    Json {
        /// The schema.
        schema: Value,
        /// Whitespace between tokens.
        whitespace: JsonWhitespace,
    },
    /// The whole reply matches a regular expression (Rust `regex` syntax, no look-around).
    Regex(String),
    /// The reply is exactly one of these strings.
    Choice(Vec<String>),
    /// A grammar in llguidance's Lark dialect (`start:` rule; `%json{...}` embeds a schema).
    Lark(String),
}

/// Whitespace between the tokens of a JSON reply.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum JsonWhitespace {
    /// [`DEFAULT_JSON_WHITESPACE`] at each place.
    #[default]
    Bounded,
    /// None at all: the compact form `{"a":1}`.
    None,
    /// This regular expression at each place.
    Pattern(String),
}

impl Constraint {
    /// Any JSON object.
    pub fn json_object() -> Constraint {
        Constraint::Json {
            schema: serde_json::json!({ "type": "object" }),
            whitespace: JsonWhitespace::Bounded,
        }
    }

    /// The llguidance grammar of this constraint.
    pub fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            Constraint::Json { schema, whitespace } => {
                let mut schema = schema.clone();
                if !schema.is_object() {
                    return Err(invalid(format!(
                        "expected the JSON schema to be an object, got {}",
                        crate::data::describe(&schema)
                    )));
                }
                json_options(whitespace).apply_to(&mut schema);
                TopLevelGrammar::from_json_schema(schema)
            }
            Constraint::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Constraint::Choice(choices) => {
                if choices.is_empty() {
                    return Err(invalid("expected at least one choice".to_owned()));
                }
                let alternatives: Vec<String> = choices
                    .iter()
                    .map(|c| serde_json::to_string(c).expect("strings serialise"))
                    .collect();
                TopLevelGrammar::from_lark(format!("start: {}", alternatives.join(" | ")))
            }
            Constraint::Lark(text) => {
                if text.trim().is_empty() {
                    return Err(invalid("the grammar is empty".to_owned()));
                }
                TopLevelGrammar::from_lark(text.clone())
            }
        })
    }

    /// Compiles the constraint against a one-byte-per-token vocabulary, so a bad schema,
    /// regex or grammar is reported before any model is loaded. Grammars that name a
    /// model's special tokens (`<|im_end|>`) only compile against that model: they pass
    /// here and are checked again by [`TextTokenizer::constrain`].
    pub fn check(&self) -> Result<()> {
        let grammar = self.grammar()?;
        let env = toktrie::ApproximateTokEnv::single_byte_env();
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| invalid(e.to_string()))?;
        factory.quiet();
        match factory.create_parser(grammar) {
            Ok(_) => Ok(()),
            Err(e) if mentions_special_token(&e.to_string()) => Ok(()),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
}

fn mentions_special_token(message: &str) -> bool {
    message.contains("special token")
}

fn json_options(whitespace: &JsonWhitespace) -> JsonCompileOptions {
    let mut options = JsonCompileOptions::default();
    match whitespace {
        JsonWhitespace::Bounded => {
            options.whitespace_pattern = Some(DEFAULT_JSON_WHITESPACE.to_owned());
        }
        JsonWhitespace::None => options.whitespace_flexible = false,
        JsonWhitespace::Pattern(p) => options.whitespace_pattern = Some(p.clone()),
    }
    options
}

fn invalid(message: String) -> Error {
    Error::Constraint(message)
}

/// Keys whose values are schemas, and keys whose values are lists or maps of schemas.
const SCHEMA_KEYS: [&str; 6] = ["items", "not", "if", "then", "else", "contains"];
const SCHEMA_LIST_KEYS: [&str; 4] = ["anyOf", "allOf", "oneOf", "prefixItems"];
const SCHEMA_MAP_KEYS: [&str; 4] = ["properties", "patternProperties", "$defs", "definitions"];

/// Calls `f` on `schema` and every subschema, with its JSON pointer.
fn walk_schemas(schema: &mut Value, pointer: &str, f: &mut dyn FnMut(&mut Value, &str)) {
    f(schema, pointer);
    let Some(obj) = schema.as_object_mut() else { return };
    for key in SCHEMA_KEYS.iter().chain(["additionalProperties"].iter()) {
        if let Some(sub) = obj.get_mut(*key).filter(|s| s.is_object()) {
            walk_schemas(sub, &format!("{pointer}/{key}"), f);
        }
    }
    for key in SCHEMA_LIST_KEYS {
        if let Some(Value::Array(list)) = obj.get_mut(key) {
            for (i, sub) in list.iter_mut().enumerate() {
                walk_schemas(sub, &format!("{pointer}/{key}/{i}"), f);
            }
        }
    }
    for key in SCHEMA_MAP_KEYS {
        if let Some(Value::Object(map)) = obj.get_mut(key) {
            for (name, sub) in map.iter_mut() {
                let escaped = name.replace('~', "~0").replace('/', "~1");
                walk_schemas(sub, &format!("{pointer}/{key}/{escaped}"), f);
            }
        }
    }
}

fn is_object_schema(schema: &Value) -> bool {
    let ty = &schema["type"];
    ty == "object"
        || ty.as_array().is_some_and(|t| t.iter().any(|t| t == "object"))
        || schema.get("properties").is_some()
}

/// Where a strict schema breaks the rule that every object schema sets
/// `"additionalProperties": false`: the JSON pointer of the first offender (`""` is the
/// root), or `None` when the schema follows it.
pub fn strict_violation(schema: &Value) -> Option<String> {
    let mut schema = schema.clone();
    let mut found = None;
    walk_schemas(&mut schema, "", &mut |s, pointer| {
        if found.is_none()
            && is_object_schema(s)
            && s.get("additionalProperties") != Some(&false.into())
        {
            found = Some(pointer.to_owned());
        }
    });
    found
}

/// Sets `"additionalProperties": false` on every object schema that does not say,
/// so a reply holds only the declared keys (llguidance otherwise allows any extra key).
pub fn close_objects(schema: &mut Value) {
    walk_schemas(schema, "", &mut |s, _| {
        if is_object_schema(s)
            && let Some(obj) = s.as_object_mut()
            && !obj.contains_key("additionalProperties")
        {
            obj.insert("additionalProperties".to_owned(), false.into());
        }
    });
}

/// The state of one constrained reply: which tokens may come next.
pub struct ConstraintState {
    matcher: Matcher,
}

impl ConstraintState {
    /// Sets every logit the grammar forbids to minus infinity (logits past the
    /// tokenizer's vocabulary included).
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self.matcher.compute_mask_or_eos().map_err(|e| {
            Error::Constraint(format!("no token can continue the constrained reply: {e}"))
        })?;
        let n = allowed.len().min(logits.len());
        allowed.iter_unset_entries(|i| {
            if i < n {
                logits[i] = f32::NEG_INFINITY;
            }
        });
        logits[n..].fill(f32::NEG_INFINITY);
        Ok(())
    }

    /// Feeds the chosen token to the grammar.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        self.matcher
            .consume_token(token)
            .map_err(|e| Error::Constraint(format!("the grammar rejected token {token}: {e}")))
    }

    /// Whether the reply is complete and nothing may follow.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

/// The tokenizer's vocabulary as llguidance sees it.
struct TokenEnv {
    trie: TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl TokenizerEnv for TokenEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<toktrie::TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |text| {
            self.tokenizer.encode(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default()
        })
    }
}

/// A parser factory for one tokenizer and LM-head width.
pub(crate) struct Grammars {
    n_vocab: usize,
    factory: Arc<ParserFactory>,
}

impl Grammars {
    pub(crate) fn new(
        tokenizer: &tokenizers::Tokenizer,
        eos: &[u32],
        n_vocab: usize,
    ) -> Result<Grammars> {
        let json: Value = serde_json::from_str(
            &tokenizer.to_string(false).map_err(|e| Error::Constraint(e.to_string()))?,
        )
        .map_err(|e| Error::Constraint(e.to_string()))?;
        let mut bytes = llguidance::token_bytes_from_tokenizer_json(&json)
            .map_err(|e| Error::Constraint(format!("reading the tokenizer's vocabulary: {e}")))?;
        if bytes.len() > n_vocab {
            return Err(Error::Constraint(format!(
                "the tokenizer has {} tokens but the model only {n_vocab} logits",
                bytes.len()
            )));
        }
        bytes.resize(n_vocab, vec![]);
        // End-of-sequence tokens must never match reply text (a tokenizer may not mark
        // them special): they are allowed only where the grammar accepts.
        for &id in eos {
            let b = &mut bytes[id as usize];
            if b.first() != Some(&TokTrie::SPECIAL_TOKEN_MARKER) {
                b.insert(0, TokTrie::SPECIAL_TOKEN_MARKER);
            }
        }
        let first_eos = *eos.first().ok_or_else(|| {
            Error::Constraint("the tokenizer has no end-of-sequence token".to_owned())
        })?;
        let trie =
            TokTrie::from(&TokRxInfo::new(n_vocab as u32, first_eos), &bytes).with_eos_tokens(eos);
        let env: toktrie::TokEnv = Arc::new(TokenEnv { trie, tokenizer: tokenizer.clone() });
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| Error::Constraint(e.to_string()))?;
        factory.quiet();
        Ok(Grammars { n_vocab, factory: Arc::new(factory) })
    }

    pub(crate) fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    pub(crate) fn start(&self, constraint: &Constraint) -> Result<ConstraintState> {
        let parser = self
            .factory
            .create_parser(constraint.grammar()?)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(ConstraintState { matcher: Matcher::new(Ok(parser)) })
    }
}

impl TextTokenizer {
    /// Starts a constrained reply for a model with `n_vocab` logits.
    pub fn constrain(&self, constraint: &Constraint, n_vocab: usize) -> Result<ConstraintState> {
        self.grammars(n_vocab)?.start(constraint)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strict_schemas_need_closed_objects_everywhere() {
        let ok = json!({"type": "object", "additionalProperties": false, "properties": {
            "a": {"type": "object", "properties": {}, "additionalProperties": false},
            "b": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(strict_violation(&ok), None);
        let nested = json!({"type": "object", "additionalProperties": false, "properties": {
            "list": {"type": "array", "items": {"type": "object", "properties": {"x": {}}}}}});
        assert_eq!(strict_violation(&nested).as_deref(), Some("/properties/list/items"));
        assert_eq!(strict_violation(&json!({"type": "object"})).as_deref(), Some(""));
        let mut closed = nested.clone();
        close_objects(&mut closed);
        assert_eq!(strict_violation(&closed), None);
        assert_eq!(closed["properties"]["list"]["items"]["additionalProperties"], json!(false));
    }

    #[test]
    fn bad_constraints_are_reported_before_decoding() {
        let cases = [
            (
                Constraint::Json {
                    schema: json!({"type": "strin"}),
                    whitespace: Default::default(),
                },
                "strin",
            ),
            (Constraint::Json { schema: json!([1]), whitespace: Default::default() }, "an array"),
            (Constraint::Regex("(unclosed".into()), "unclosed"),
            (Constraint::Choice(vec![]), "at least one choice"),
            (Constraint::Lark("  ".into()), "empty"),
            (Constraint::Lark("start: (".into()), ""),
        ];
        for (c, needle) in cases {
            let err = c.check().expect_err(&format!("{c:?} should be rejected")).to_string();
            assert!(err.contains(needle), "{c:?}: {err}");
        }
        Constraint::Regex("[0-9]{3}-[0-9]{4}".into()).check().unwrap();
        Constraint::Lark("start: \"x=\" NUM \";\"\nNUM: /[0-9]{1,3}/".into()).check().unwrap();
        Constraint::Choice(vec!["a\"b".into(), "é".into()]).check().unwrap();
    }
}
