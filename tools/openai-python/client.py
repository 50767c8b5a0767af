#!/usr/bin/env python3
"""One chat completion through the official OpenAI Python client, for arkor's tests.

Usage: client.py BASE_URL API_KEY JSON_REQUEST [--stream]

JSON_REQUEST holds the keyword arguments of `client.chat.completions.create` (model, messages,
response_format, tools, tool_choice, max_tokens, temperature, ...). Prints one JSON object:
{"status": 200, "content", "tool_calls": [{"id", "name", "arguments"}], "finish_reason"} or,
when the server refuses, {"status": <http status>, "error": "<message>"}.
The openai package comes from PYTHONPATH (`.ci/run` installs it with pip --target).
"""

import json
import sys

import openai


def main() -> None:
    base, key, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    stream = "--stream" in sys.argv[4:]
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
    try:
        if not stream:
            reply = client.chat.completions.create(**request)
            choice = reply.choices[0]
            calls = [
                {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                for c in choice.message.tool_calls or []
            ]
            out = {
                "status": 200,
                "content": choice.message.content,
                "tool_calls": calls,
                "finish_reason": choice.finish_reason,
                "model": reply.model,
            }
        else:
            content, calls, finish = "", [], None
            for chunk in client.chat.completions.create(stream=True, **request):
                delta = chunk.choices[0].delta
                content += delta.content or ""
                for c in delta.tool_calls or []:
                    calls.append({"id": c.id, "name": c.function.name, "arguments": c.function.arguments})
                finish = chunk.choices[0].finish_reason or finish
            out = {"status": 200, "content": content, "tool_calls": calls, "finish_reason": finish}
    except openai.APIStatusError as e:
        out = {"status": e.status_code, "error": str(e)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
