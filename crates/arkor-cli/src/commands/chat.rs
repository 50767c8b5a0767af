//! `arkor chat`: talk to a model, or a model plus an adapter, in the terminal.
//!
//! With `--prompt` it sends one message and prints only the streamed reply (for scripts).
//! Otherwise it reads messages line by line from stdin, keeps the conversation, and
//! understands `/reset` and `/exit`. Every message goes through the model's chat template.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use arkor_engine::cancel::CancelToken;
use arkor_engine::constrain::{Constraint, JsonWhitespace};
use arkor_engine::generate::{SamplingParams, chat};
use arkor_engine::tokenizer::ChatMessage;

use crate::args::ChatArgs;
use crate::config::Global;

/// The constraint `--json-schema`, `--json`, `--regex`, `--choice` or `--grammar` asks for,
/// checked before the model loads.
fn constraint(args: &ChatArgs) -> anyhow::Result<Option<Constraint>> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
    };
    let constraint = if let Some(path) = &args.json_schema {
        let schema = serde_json::from_str(&read(path)?)
            .with_context(|| format!("{}: not a JSON schema", path.display()))?;
        Constraint::Json { schema, whitespace: JsonWhitespace::Bounded }
    } else if args.json {
        Constraint::json_object()
    } else if let Some(rx) = &args.regex {
        Constraint::Regex(rx.clone())
    } else if !args.choice.is_empty() {
        Constraint::Choice(args.choice.clone())
    } else if let Some(path) = &args.grammar {
        Constraint::Lark(read(path)?)
    } else {
        return Ok(None);
    };
    constraint.check()?;
    Ok(Some(constraint))
}

pub fn run(global: &Global, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let constraint = constraint(&args)?;
    let super::Loaded { model, tokenizer, adapter } =
        super::load_model(global, &args.model, args.adapter.as_deref())?;
    let params = SamplingParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
        stop: args.stop.clone(),
        constraint,
    };
    let mut history: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage { role: "system".into(), content: s.clone() })
        .collect();
    let cancel = CancelToken::new();
    let mut stdout = std::io::stdout().lock();
    let reply = |history: &[ChatMessage], out: &mut dyn Write| -> anyhow::Result<String> {
        let mut io_err = None;
        let generation =
            chat(&model, adapter.as_ref(), &tokenizer, history, &params, &cancel, &mut |t| {
                if io_err.is_none() {
                    io_err = out.write_all(t.as_bytes()).and_then(|()| out.flush()).err();
                }
            })?;
        if let Some(e) = io_err {
            return Err(e.into());
        }
        writeln!(out)?;
        Ok(generation.text)
    };

    if let Some(prompt) = &args.prompt {
        history.push(ChatMessage { role: "user".into(), content: prompt.clone() });
        reply(&history, &mut stdout)?;
        return Ok(ExitCode::SUCCESS);
    }
    let base = history.clone();
    eprintln!(
        "chatting with {} (/reset clears the conversation, /exit or Ctrl-D quits)",
        args.model
    );
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history = base.clone();
                continue;
            }
            text => history.push(ChatMessage { role: "user".into(), content: text.to_owned() }),
        }
        let text = reply(&history, &mut stdout)?;
        history.push(ChatMessage { role: "assistant".into(), content: text });
    }
    Ok(ExitCode::SUCCESS)
}
