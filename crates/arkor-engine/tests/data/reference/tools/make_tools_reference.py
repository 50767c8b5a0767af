"""Reference renderings of conversations with tools, by transformers' apply_chat_template.

Two templates in this folder, written for these tests in the structure of the two tool
formats arkor knows: hermes.jinja (Qwen2.5's layout: tools in the system turn,
<tool_call> blocks, <tool_response> in a user turn) and llama3.jinja (Llama 3.1's layout:
tools in the first user turn with tojson(indent=4), bare {"name", "parameters"} calls,
ipython results). Run with transformers installed:

    python make_tools_reference.py   # writes tools_reference.json
"""
import json
from pathlib import Path

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).parent
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather for a city. Don't use <b> & é here",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city, e.g. 'Paris'"},
            "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
]
CONVERSATIONS = {
    "call_and_result": [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "c"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
    ],
    "no_system": [
        {"role": "user", "content": "What time is it?"},
    ],
}


def main():
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), bos_token="<|begin_of_text|>")
    out = {"tools": TOOLS, "conversations": CONVERSATIONS, "rendered": {}}
    for name in ["hermes", "llama3"]:
        template = (HERE / f"{name}.jinja").read_text()
        for conv, messages in CONVERSATIONS.items():
            for tools in [TOOLS, None]:
                key = f"{name}/{conv}/{'tools' if tools else 'no_tools'}"
                out["rendered"][key] = tok.apply_chat_template(
                    messages, tools=tools, chat_template=template, tokenize=False,
                    add_generation_prompt=True)
    (HERE / "tools_reference.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
