# Test vectors for green-list watermark detection (src/shared/guard/green-list.ts),
# computed independently here with hmac and SciPy, and a tiny WordPiece
# tokenizer.json for the tokenizer path. Run:
#   python3 scripts/guard/green-list-vectors.py
# Writes test/fixtures/guard/green-list-vectors.json and
# test/fixtures/guard/tokenizer.json. Python only writes these committed
# files; nothing runs it at run time.
import hashlib
import hmac
import json
import math
import os
import struct

import numpy as np
from scipy import stats

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "guard")
VOCAB = 1000


def is_green(key, window, gamma):
    mac = hmac.new(key.encode(), b"".join(struct.pack(">I", t) for t in window), hashlib.sha256).digest()
    return struct.unpack(">I", mac[:4])[0] < math.floor(gamma * 2**32)


def score(ids, key, gamma, width, ignore_repeated):
    seen, scored, green = set(), 0, 0
    for i in range(width, len(ids)):
        window = tuple(ids[i - width : i + 1])
        if ignore_repeated:
            if window in seen:
                continue
            seen.add(window)
        scored += 1
        green += is_green(key, window, gamma)
    z = 0.0 if scored == 0 else (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma))
    return {"tokens_scored": scored, "green_tokens": green, "z_score": z, "p_value": float(stats.norm.sf(z)) if scored else 1.0}


def watermarked(rng, key, gamma, width, length, strength):
    # A sampler that picks a green token with probability `strength`.
    ids = [int(t) for t in rng.integers(0, VOCAB, width)]
    while len(ids) < length:
        want_green = rng.random() < strength
        while True:
            t = int(rng.integers(0, VOCAB))
            if is_green(key, ids[-width:] + [t], gamma) == want_green:
                break
        ids.append(t)
    return ids


rng = np.random.default_rng(20261128)
cases = []
for key, gamma, width in [("owner-key", 0.25, 1), ("another key", 0.5, 1), ("owner-key", 0.25, 2)]:
    for kind in ["plain", "watermarked", "repeated"]:
        if kind == "plain":
            ids = [int(t) for t in rng.integers(0, VOCAB, 300)]
        elif kind == "watermarked":
            ids = watermarked(rng, key, gamma, width, 300, 0.9)
        else:
            ids = [int(t) for t in rng.integers(0, VOCAB, 20)] * 15
        for ignore in [True, False]:
            cases.append({"key": key, "gamma": gamma, "context_width": width, "ignore_repeated": ignore, "kind": kind, "ids": ids,
                          **score(ids, key, gamma, width, ignore)})

words = ["[UNK]", "the", "model", "was", "trained", "on", "public", "data", "and", "it", "answers", "questions", "about", "cats", "dogs", "weather", "."]
tokenizer = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
    "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None,
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
              "vocab": {word: i for i, word in enumerate(words)}},
}
text = "The model was trained on public data . It answers questions about cats and dogs ; the weather ."
ids = [words.index(w) if w in words else 0 for w in text.lower().split()]
# Text a watermarking sampler wrote with this vocabulary: every word green
# after the one before it (the strongest watermark there is).
marked = [1]
while len(marked) < 80:
    options = [i for i in range(1, len(words)) if is_green("owner-key", [marked[-1], i], 0.25)]
    marked.append(options[int(rng.integers(0, len(options)))] if options else int(rng.integers(1, len(words))))
marked_text = " ".join(words[i] for i in marked)
marked_case = {"text": marked_text, "ids": marked, "key": "owner-key", "gamma": 0.25, "context_width": 1, "ignore_repeated": True, **score(marked, "owner-key", 0.25, 1, True)}
text_case = {"text": text, "ids": ids, "key": "owner-key", "gamma": 0.25, "context_width": 1, "ignore_repeated": True, **score(ids, "owner-key", 0.25, 1, True)}

with open(os.path.join(OUT, "green-list-vectors.json"), "w") as handle:
    json.dump({"scipy": __import__("scipy").__version__, "cases": cases, "text": text_case, "watermarked_text": marked_case}, handle)
    handle.write("\n")
with open(os.path.join(OUT, "tokenizer.json"), "w") as handle:
    json.dump(tokenizer, handle, indent=1)
    handle.write("\n")
