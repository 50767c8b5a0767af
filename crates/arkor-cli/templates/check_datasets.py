#!/usr/bin/env python3
"""Validate the template datasets written by make_datasets.py.

    python3 check_datasets.py

Checks every line of the six JSONL files (triage, translate, redaction x
train/heldout), prints per-file distributions and exits non-zero on any
problem. Only the Python 3 standard library is used.
"""

import collections
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

MIN_ROWS = {"train": 320, "heldout": 40}
MAX_BYTES = 400 * 1024

TRIAGE_KEYS = ["category", "urgency", "summary", "nextAction"]
TRIAGE_CATEGORIES = {"account", "billing", "bug", "feature_request", "integration",
                     "security", "performance", "other"}
TRIAGE_URGENCIES = {"low", "medium", "high"}

TRANSLATE_KEYS = ["translation", "detectedLanguage"]
LANGS = ["ja", "es", "fr", "de", "pt", "it", "zh", "ko", "en"]

REDACTION_KEYS = ["redactedText", "redactedCount", "tags"]
TAGS = {"NAME", "EMAIL", "PHONE", "ADDRESS", "CREDIT_CARD", "IP_ADDRESS", "DATE_OF_BIRTH", "ID_NUMBER"}
MARK = "[REDACTED]"


class Checker:
    def __init__(self):
        self.errors = []

    def err(self, where, msg):
        self.errors.append(f"{where}: {msg}")


def check_triage(c, where, user, obj, stats):
    if obj["category"] not in TRIAGE_CATEGORIES:
        c.err(where, f"bad category {obj['category']!r}")
    if obj["urgency"] not in TRIAGE_URGENCIES:
        c.err(where, f"bad urgency {obj['urgency']!r}")
    for key in ("summary", "nextAction"):
        v = obj[key]
        if not isinstance(v, str) or not v.strip():
            c.err(where, f"{key} must be a non-empty string")
        elif not v.endswith("."):
            c.err(where, f"{key} should be one sentence ending with a period")
    if isinstance(obj["summary"], str) and len(obj["summary"].split()) > 15:
        c.err(where, "summary longer than 15 words")
    stats["category"][obj["category"]] += 1
    stats["urgency"][obj["urgency"]] += 1


def check_translate(c, where, user, obj, stats):
    t = obj["translation"]
    if not isinstance(t, str) or not t.strip() or t != t.strip():
        c.err(where, "translation must be a non-empty, trimmed string")
    lang = obj["detectedLanguage"]
    if lang not in LANGS:
        c.err(where, f"bad detectedLanguage {lang!r}")
    if lang != "en" and isinstance(t, str) and re.search(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]", t):
        c.err(where, "translation contains CJK characters")
    if lang == "en" and isinstance(t, str) and " ".join(user.split()).lower().rstrip(".") != t.lower().rstrip("."):
        c.err(where, "English translation should only normalise the input")
    stats["language"][lang] += 1


def check_redaction(c, where, user, obj, stats):
    text, count, tags = obj["redactedText"], obj["redactedCount"], obj["tags"]
    if not isinstance(text, str):
        c.err(where, "redactedText must be a string")
        return
    if not isinstance(count, int) or isinstance(count, bool):
        c.err(where, "redactedCount must be an integer")
    elif count != text.count(MARK):
        c.err(where, f"redactedCount {count} != {text.count(MARK)} occurrences of {MARK}")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        c.err(where, "tags must be a list of strings")
        return
    if tags != sorted(set(tags)):
        c.err(where, "tags must be sorted and distinct")
    if not set(tags) <= TAGS:
        c.err(where, f"unknown tags {sorted(set(tags) - TAGS)}")
    if (count == 0) != (len(tags) == 0):
        c.err(where, "tags must be empty exactly when nothing is redacted")
    if MARK in user:
        c.err(where, "user text already contains the redaction marker")
    # The redacted text must be the user text with some spans replaced.
    pattern = "(.+?)".join(re.escape(part) for part in text.split(MARK))
    if not re.fullmatch(pattern, user, flags=re.DOTALL):
        c.err(where, "redactedText is not the input with spans replaced by [REDACTED]")
    stats["rows_with_pii" if count else "rows_without_pii"][""] += 1
    for t in tags:
        stats["tag"][t] += 1
    stats["redactions"][""] += count if isinstance(count, int) else 0


TEMPLATES = {
    "triage": (TRIAGE_KEYS, check_triage),
    "translate": (TRANSLATE_KEYS, check_translate),
    "redaction": (REDACTION_KEYS, check_redaction),
}


def check_file(c, template, split):
    keys, check_answer = TEMPLATES[template]
    path = os.path.join(HERE, template, "data", f"{split}.jsonl")
    rel = os.path.relpath(path, HERE)
    stats = collections.defaultdict(collections.Counter)
    users = []
    systems = set()
    if not os.path.exists(path):
        c.err(rel, "missing")
        return users, stats
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        c.err(rel, f"{size} bytes exceeds {MAX_BYTES}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines, 1):
        where = f"{rel}:{i}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            c.err(where, f"invalid JSON: {e}")
            continue
        if not isinstance(row, dict) or list(row.keys()) != ["messages"]:
            c.err(where, "row must be an object with only a 'messages' key")
            continue
        msgs = row["messages"]
        if not isinstance(msgs, list) or len(msgs) != 3:
            c.err(where, "messages must be a list of 3 messages")
            continue
        if [m.get("role") if isinstance(m, dict) else None for m in msgs] != ["system", "user", "assistant"]:
            c.err(where, "roles must be system, user, assistant")
            continue
        if any(sorted(m.keys()) != ["content", "role"] or not isinstance(m["content"], str) or not m["content"].strip()
               for m in msgs):
            c.err(where, "each message needs a non-empty string content and a role only")
            continue
        systems.add(msgs[0]["content"])
        user = msgs[1]["content"]
        users.append(user)
        try:
            obj = json.loads(msgs[2]["content"])
        except json.JSONDecodeError as e:
            c.err(where, f"assistant content is not JSON: {e}")
            continue
        if not isinstance(obj, dict) or list(obj.keys()) != keys:
            c.err(where, f"assistant keys must be exactly {keys} in this order")
            continue
        check_answer(c, where, user, obj, stats)
    if len(systems) > 1:
        c.err(rel, f"{len(systems)} different system prompts (expected one)")
    dupes = [u for u, n in collections.Counter(users).items() if n > 1]
    if dupes:
        c.err(rel, f"{len(dupes)} duplicate user texts, e.g. {dupes[0]!r}")
    if len(lines) < MIN_ROWS[split]:
        c.err(rel, f"{len(lines)} rows, need at least {MIN_ROWS[split]}")
    print(f"{rel}: {len(lines)} rows, {size} bytes")
    for name, counter in sorted(stats.items()):
        if list(counter.keys()) == [""]:
            print(f"  {name}: {counter['']}")
        else:
            order = LANGS if name == "language" else sorted(counter)
            print(f"  {name}: " + ", ".join(f"{k}={counter[k]}" for k in order if k in counter))
    return users, stats


def main():
    c = Checker()
    for template in TEMPLATES:
        train_users, _ = check_file(c, template, "train")
        heldout_users, _ = check_file(c, template, "heldout")
        overlap = set(train_users) & set(heldout_users)
        if overlap:
            c.err(template, f"{len(overlap)} heldout user texts also in train, e.g. {next(iter(sorted(overlap)))!r}")
    if c.errors:
        print(f"\nFAILED with {len(c.errors)} problem(s):")
        for e in c.errors[:50]:
            print("  " + e)
        sys.exit(1)
    print("\nOK: all datasets valid")


if __name__ == "__main__":
    main()
