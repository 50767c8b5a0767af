"""Reference renderings of real chat templates by transformers, for arkor's template tests.

The templates are not committed: they come from llama.cpp's `models/templates` (copied
there from the models' Hub repositories), inside the pinned npm package
`node-llama-cpp@3.21.1`, which `.ci/run` unpacks into a cache (`ARKOR_CHAT_TEMPLATES`).
This script renders each one with transformers' own `render_jinja_template` on a few
conversations (system prompts, several turns, tools and tool results, `enable_thinking`,
`add_generation_prompt` on and off) and writes `chat_templates.json`: the template file's
SHA-256, the variables, and the text transformers produced (or its error).

    python make_template_reference.py TEMPLATES_DIR > chat_templates.json
"""

import hashlib
import json
import sys
from pathlib import Path

import transformers
from transformers.utils.chat_template_utils import render_jinja_template

SYSTEM = {"role": "system", "content": "You are a terse assistant."}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
ASK_WEATHER = {"role": "user", "content": "What is the weather in Paris?"}
CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {
            "id": "call0abcd",
            "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        }
    ],
}
RESULT = {"role": "tool", "tool_call_id": "call0abcd", "name": "get_weather", "content": "{\"temperature\": 18}"}

CASES = {
    "system_and_user": ([SYSTEM, {"role": "user", "content": "What is 2 + 2?"}], None, True, {}),
    "several_turns": (
        [
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Name a prime number."},
        ],
        None,
        True,
        {},
    ),
    "no_generation_prompt": (
        [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello!"}],
        None,
        False,
        {},
    ),
    "tools": ([ASK_WEATHER], [WEATHER], True, {}),
    "tool_call_and_result": ([ASK_WEATHER, CALL, RESULT], [WEATHER], True, {}),
    "thinking_off": ([SYSTEM, {"role": "user", "content": "What is 2 + 2?"}], None, True, {"enable_thinking": False}),
    "reply_with_thinking": (
        [
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\n4"},
            {"role": "user", "content": "And 3 + 3?"},
        ],
        None,
        True,
        {},
    ),
}

# file: (special tokens as the model's tokenizer sets them, extra variables, cases)
TEMPLATES = {
    "Qwen-Qwen3-0.6B.jinja": ({"bos_token": "", "eos_token": "<|im_end|>"}, {}, list(CASES)),
    "Qwen-Qwen2.5-7B-Instruct.jinja": (
        {"bos_token": "", "eos_token": "<|im_end|>"},
        {},
        ["system_and_user", "several_turns", "no_generation_prompt", "tools", "tool_call_and_result"],
    ),
    "HuggingFaceTB-SmolLM3-3B.jinja": (
        {"bos_token": "", "eos_token": "<|im_end|>"},
        {},
        ["system_and_user", "several_turns", "no_generation_prompt", "thinking_off"],
    ),
    "google-gemma-2-2b-it.jinja": (
        {"bos_token": "<bos>", "eos_token": "<eos>"},
        {},
        ["system_and_user", "several_turns", "no_generation_prompt"],
    ),
    "meta-llama-Llama-3.2-3B-Instruct.jinja": (
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        {"date_string": "26 Jul 2024"},
        ["system_and_user", "several_turns", "no_generation_prompt", "tools", "tool_call_and_result"],
    ),
    "microsoft-Phi-3.5-mini-instruct.jinja": (
        {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
        {},
        ["system_and_user", "several_turns", "no_generation_prompt"],
    ),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": (
        {"bos_token": "<s>", "eos_token": "</s>"},
        {},
        ["system_and_user", "several_turns", "no_generation_prompt", "tools", "tool_call_and_result"],
    ),
}


def main(folder: str) -> None:
    out = {"transformers": transformers.__version__, "templates": []}
    for name, (special, extra, cases) in TEMPLATES.items():
        text = (Path(folder) / name).read_text()
        entry = {"file": name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "cases": []}
        for case in cases:
            messages, tools, add_generation_prompt, kwargs = CASES[case]
            variables = {**special, **extra, **kwargs}
            context = {
                "messages": messages,
                "tools": tools,
                "documents": None,
                "add_generation_prompt": add_generation_prompt,
                **variables,
            }
            try:
                rendered = render_jinja_template(
                    conversations=[messages],
                    tools=tools,
                    chat_template=text,
                    add_generation_prompt=add_generation_prompt,
                    **variables,
                )
                if isinstance(rendered, tuple):
                    rendered = rendered[0]
                expected, error = rendered[0], None
            except Exception as e:  # the template's raise_exception: arkor must refuse too
                expected, error = None, str(e)
            entry["cases"].append({"name": case, "context": context, "expected": expected, "error": error})
        out["templates"].append(entry)
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
