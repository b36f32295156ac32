#!/usr/bin/env python3
"""Reference outputs for the merge tests, computed independently of Moat's
TypeScript: mergekit's formulas (generalized task arithmetic, sparsify, slerp,
nuslerp, model_stock, linear, passthrough) written again in numpy float32,
and mergekit's config semantics (precedence, gradients, filters, slices).

Two things are Moat's by design and reproduced here exactly, so the tests can
compare bit-for-bit where the maths allows: random masks (DARE, DELLA) draw
from a counter-based hash of (seed, tensor name, model position, element
index) instead of torch's global generator, and ranks break ties between
equal magnitudes by element index (a stable argsort).

Run after generate.ts:  python3 scripts/merge-fixtures/reference.py
Writes test/fixtures/merge/reference/<config>.safetensors.
"""

import json
import math
import os
import re
import struct
import sys

import numpy as np
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../test/fixtures/merge")
SEED = 0

# --- safetensors -------------------------------------------------------------------


def read_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin : 8 + n + end]
        dtype = info["dtype"]
        if dtype == "F32":
            values = np.frombuffer(raw, dtype="<f4")
        elif dtype == "F16":
            values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dtype == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(dtype)
        out[name] = (values.reshape(info["shape"]).astype(np.float32), dtype)
    return out


def read_model(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for shard in shards:
            tensors.update(read_file(os.path.join(directory, shard)))
        return tensors
    return read_file(os.path.join(directory, "model.safetensors"))


def to_bf16_bits(values):
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def write_file(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, (values, dtype) in tensors.items():
        if dtype == "F32":
            raw = values.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = values.astype("<f2").tobytes()
        else:
            raw = to_bf16_bits(values).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# --- the random stream ---------------------------------------------------------------

M32 = 0xFFFFFFFF


def mix32(x):
    # uint32 products wrap, as Math.imul's do.
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint32)
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x85EBCA6B)
        x = x ^ (x >> np.uint32(13))
        x = x * np.uint32(0xC2B2AE35)
        return x ^ (x >> np.uint32(16))


def random_key(seed, name, model_index):
    h = 0x811C9DC5
    for byte in name.encode():
        h = ((h ^ byte) * 0x01000193) & M32
    return int(mix32((h + seed * 0x9E3779B1 + (model_index + 1) * 0x85EBCA6B) & M32))


def uniform(key, count):
    index = np.arange(count, dtype=np.uint64)
    x = ((index * 0x9E3779B1) & M32).astype(np.uint32) ^ np.uint32(key)
    return (mix32(x) >> np.uint32(8)).astype(np.float64) / 16777216.0


# --- mergekit's sparsify ----------------------------------------------------------------


def rescaled(tensor, mask, rescale):
    masked = tensor * mask
    if not rescale:
        return masked
    before = np.abs(tensor).sum(dtype=np.float64)
    after = np.abs(masked).sum(dtype=np.float64)
    if before < 1e-7 or after < 1e-7:
        return masked
    return (masked * np.float32(before / after)).astype(np.float32)


def keep_rank_range(tensor, lo, hi):
    flat = np.abs(tensor).reshape(-1)
    order = np.argsort(flat, kind="stable")
    mask = np.zeros(flat.shape, dtype=np.float32)
    if hi >= lo:
        mask[order[lo : hi + 1]] = 1
    return mask.reshape(tensor.shape)


def magnitude(tensor, density, rescale):
    if density >= 1:
        return tensor
    n = tensor.size
    k = int(density * n)
    return rescaled(tensor, keep_rank_range(tensor, n - k, n - 1), rescale)


def magnitude_outliers(tensor, density, gamma, rescale):
    if density >= 1:
        return tensor
    n = tensor.size
    target = int(density * n)
    top = int(gamma * n)
    bottom = n - target - top
    if bottom < 0:
        top += bottom
        bottom = 0
    # mergekit slices indices[bottom:-top], empty when top == 0; Moat keeps [bottom, n - top).
    return rescaled(tensor, keep_rank_range(tensor, bottom, n - top - 1), rescale)


def bernoulli(tensor, density, key, rescale):
    if density >= 1:
        return tensor
    mask = (uniform(key, tensor.size) < density).astype(np.float32).reshape(tensor.shape)
    return rescaled(tensor, mask, rescale)


def della_magprune(tensor, density, epsilon, key, rescale):
    if density >= 1:
        return tensor
    if density <= 0:
        return np.zeros_like(tensor)
    shape = tensor.shape
    rows = tensor.reshape(1, -1) if tensor.ndim < 2 else tensor
    cols = rows.shape[1]
    order = np.argsort(np.abs(rows), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(cols)[None, :].repeat(rows.shape[0], 0), axis=1)
    rank_norm = ranks / (cols - 1) if cols > 1 else np.zeros(ranks.shape)
    probs = (density - epsilon) + rank_norm * 2 * epsilon
    mask = (uniform(key, tensor.size).reshape(rows.shape) < probs).astype(np.float32)
    return rescaled(rows, mask, rescale).reshape(shape)


# --- methods ---------------------------------------------------------------------------------

TASK = {
    "task_arithmetic": (None, False, False, False),
    "ties": ("magnitude", True, True, False),
    "dare_ties": ("random", True, False, True),
    "dare_linear": ("random", False, False, True),
    "breadcrumbs": ("magnitude_outliers", False, False, False),
    "breadcrumbs_ties": ("magnitude_outliers", True, False, False),
    "della": ("della_magprune", True, True, True),
    "della_linear": ("della_magprune", False, False, True),
}


def truthy(value):
    return value is True or value == 1 or value == "true"


def task_arithmetic(method, name, base, inputs, params):
    sparsification, consensus, default_normalize, default_rescale = TASK[method]
    normalize = truthy(params.get("normalize", default_normalize))
    rescale = truthy(params.get("rescale", default_rescale))
    lam = float(params.get("lambda", 1.0))
    deltas = []
    for index, (x, p) in enumerate(inputs):
        delta = (x - base).astype(np.float32)
        density = float(p.get("density", 1.0))
        key = random_key(SEED, name, index)
        if sparsification == "magnitude":
            delta = magnitude(delta, density, rescale)
        elif sparsification == "magnitude_outliers":
            delta = magnitude_outliers(delta, density, float(p.get("gamma", 0.01)), rescale)
        elif sparsification == "random":
            delta = bernoulli(delta, density, key, rescale)
        elif sparsification == "della_magprune":
            delta = della_magprune(delta, density, float(p.get("epsilon", 0.15)), key, rescale)
        deltas.append(delta)
    deltas = np.stack(deltas).astype(np.float32)
    weights = np.array([float(p["weight"]) for _, p in inputs], dtype=np.float32).reshape((-1,) + (1,) * base.ndim)
    weighted = deltas * weights
    if consensus:
        sign = np.sign(weighted)
        majority = np.where(weighted.sum(axis=0) >= 0, 1, -1)
        mask = (sign == majority).astype(np.float32)
        mixed = (weighted * mask).sum(axis=0)
        divisor = (weights * mask).sum(axis=0)
        divisor[divisor == 0] = 1
    else:
        mixed = weighted.sum(axis=0)
        divisor = weights.sum(axis=0)
        divisor = np.where(np.abs(divisor) < 1e-8, 1, divisor)
    if normalize:
        mixed = mixed / divisor
    mixed = mixed * np.float32(lam)
    return (base + mixed).astype(np.float32)


def slerp(t, v0, v1):
    a = v0.astype(np.float64)
    b = v1.astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    dot = np.sum((a / na if na > 1e-8 else a) * (b / nb if nb > 1e-8 else b))
    if abs(dot) > 0.9995:
        return ((1 - t) * a + t * b).astype(np.float32)
    theta = math.acos(dot)
    s0 = math.sin(theta - theta * t) / math.sin(theta)
    s1 = math.sin(theta * t) / math.sin(theta)
    return (s0 * a + s1 * b).astype(np.float32)


def nuslerp_vectors(t, v0, v1):
    # Rows are the vectors.
    a = v0.astype(np.float64)
    b = v1.astype(np.float64)
    au = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-7)
    bu = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-7)
    cos = np.clip(np.sum(au * bu, axis=-1, keepdims=True), -1, 1)
    theta = np.arccos(cos)
    sin = np.sin(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / sin
    colinear = (np.abs(sin) < 1e-8).reshape(-1)
    res[colinear] = ((1 - t) * a + t * b)[colinear]
    return res


def nuslerp(params, base, inputs):
    (x0, p0), (x1, p1) = inputs
    w0, w1 = float(p0["weight"]), float(p1["weight"])
    t = 0.5 if abs(w0 + w1) < 1e-6 else w1 / (w0 + w1)
    flatten = truthy(params.get("nuslerp_flatten", True))
    row_wise = truthy(params.get("nuslerp_row_wise", False))
    v0, v1 = (x0 - base, x1 - base) if base is not None else (x0, x1)
    shape = v0.shape
    if flatten or v0.ndim < 2:
        res = nuslerp_vectors(t, v0.reshape(1, -1), v1.reshape(1, -1)).reshape(shape)
    elif row_wise:
        res = nuslerp_vectors(t, v0.reshape(shape[0], -1).T, v1.reshape(shape[0], -1).T).T.reshape(shape)
    else:
        res = nuslerp_vectors(t, v0, v1)
    if base is not None:
        res = base.astype(np.float64) + res
    return res.astype(np.float32)


def model_stock(params, base, inputs):
    ws = [x for x, _ in inputs]
    filter_wise = truthy(params.get("filter_wise", False)) and base.ndim >= 2
    shape = base.shape
    w0 = base.astype(np.float64).reshape(shape[0], -1) if filter_wise else base.astype(np.float64).reshape(1, -1)
    ws = [w.astype(np.float64).reshape(w0.shape) for w in ws]
    offsets = [w - w0 for w in ws]
    cosines = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            product = np.linalg.norm(offsets[i], axis=-1) * np.linalg.norm(offsets[j], axis=-1)
            cosines.append(np.clip((offsets[i] * offsets[j]).sum(axis=-1) / np.maximum(product, 1e-6), -1, 1))
    cos = np.mean(np.stack(cosines), axis=0)[:, None]
    n = len(ws)
    t = (n * cos) / (1 + (n - 1) * cos)
    avg = sum(ws) / n
    return (t * avg + (1 - t) * w0).reshape(shape).astype(np.float32)


def linear(params, inputs):
    tensors = np.stack([x for x, _ in inputs]).astype(np.float32)
    weights = np.array([float(p["weight"]) for _, p in inputs], dtype=np.float32).reshape((-1,) + (1,) * (tensors.ndim - 1))
    res = (weights * tensors).sum(axis=0)
    if truthy(params.get("normalize", True)):
        res = res / weights.sum(axis=0)
    return res.astype(np.float32)


# --- config semantics -------------------------------------------------------------------------

LAYER = re.compile(r"^((?:.*?\.)?(?:layers|h|blocks|layer))\.(\d+)\.(.+)$")
GLOBAL = {
    "linear": ["normalize"],
    "slerp": ["t"],
    "nuslerp": ["nuslerp_row_wise", "nuslerp_flatten"],
    "model_stock": ["filter_wise"],
    "passthrough": [],
}
PER_MODEL = {"linear": ["weight"], "nuslerp": ["weight"], "passthrough": ["scale"], "slerp": [], "model_stock": []}
for method in TASK:
    GLOBAL[method] = ["normalize", "rescale", "lambda"]
    PER_MODEL[method] = ["weight", "density", "gamma", "epsilon"]


def evaluate(setting, name, t):
    if isinstance(setting, dict):
        f = setting.get("filter")
        return evaluate(setting["value"], name, t) if f in (None, "*") or f in name else None
    if not isinstance(setting, list):
        return setting
    if all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting):
        scaled = t * (len(setting) - 1)
        i0 = int(scaled)
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    if all(not isinstance(e, dict) for e in setting):
        return setting[int(t * (len(setting) - 1))]
    for cond in setting:
        f = cond.get("filter")
        if f in (None, "*") or f in name:
            return evaluate(cond["value"], name, t)
    return None


def parameter(config, slice_, key, model, name, t):
    levels = []
    if model is not None:
        levels += [s.get("parameters") for s in slice_["sources"] if s["model"] == model]
    levels += [slice_.get("parameters"), config.get("parameters")]
    for params in levels:
        if params and key in params:
            value = evaluate(params[key], name, t)
            if value is not None:
                return value
    return None


def layer_count(tensors):
    indices = [int(m.group(2)) for m in (LAYER.match(n) for n in tensors) if m]
    return max(indices) + 1 if indices else 0


DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def merge(config, models):
    method = config["merge_method"]
    uses_base = method not in ("linear", "passthrough")
    if "slices" in config:
        slices = config["slices"]
    else:
        sources = [{"model": m["model"], "layer_range": [0, layer_count(models[m["model"]])], "parameters": m.get("parameters")} for m in config["models"]]
        base = config.get("base_model")
        if base and uses_base and base not in [s["model"] for s in sources]:
            sources.append({"model": base, "layer_range": [0, layer_count(models[base])]})
        slices = [{"sources": sources}]
    out = {}

    def plan(out_name, slice_, names, t):
        base_name = slice_.get("base_model", config.get("base_model")) if uses_base else None
        params = {k: v for k in GLOBAL[method] if (v := parameter(config, slice_, k, None, out_name, t)) is not None}
        tensors = []
        for source, name in zip(slice_["sources"], names):
            values, dtype = models[source["model"]][name]
            p = {k: v for k in PER_MODEL[method] if (v := parameter(config, slice_, k, source["model"], name, t)) is not None}
            tensors.append((source["model"], values, dtype, p))
        tensors = rectify(config, out_name, tensors, base_name)
        base = next((x for m, x, _, _ in tensors if m == base_name), None)
        inputs = [(x, p) for m, x, _, p in tensors if m != base_name]
        if method in TASK:
            result = task_arithmetic(method, out_name, base, inputs, params)
        elif method == "slerp":
            result = slerp(float(params["t"]), base, inputs[0][0])
        elif method == "nuslerp":
            result = nuslerp(params, base, inputs)
        elif method == "model_stock":
            result = model_stock(params, base, inputs)
        elif method == "linear":
            result = linear(params, inputs)
        else:
            x, p = inputs[0]
            scale = float(p.get("scale", 1))
            result = x if scale == 1 else (x.astype(np.float64) * scale).astype(np.float32)
        reference_dtype = next((d for m, _, d, _ in tensors if m == base_name), tensors[0][2])
        named = config.get("out_dtype") or config.get("dtype")
        dtype = DTYPES[named] if named else (reference_dtype if reference_dtype in ("F16", "BF16") else "F32")
        out[out_name] = (result, dtype)

    def non_layer(slice_, pre):
        base_name = slice_.get("base_model", config.get("base_model"))
        ref = next((s for s in slice_["sources"] if s["model"] == base_name), slice_["sources"][0])
        names = [n for n in models[ref["model"]] if not LAYER.match(n)]
        return [n for n in names if (("embed" in n and "embed_out" not in n) == pre)]

    first, last = slices[0], slices[-1]
    for name in non_layer(first, True):
        plan(name, first, [name] * len(first["sources"]), 0)
    out_layer = 0
    for slice_ in slices:
        lead = slice_["sources"][0]
        count = lead["layer_range"][1] - lead["layer_range"][0]
        for offset in range(count):
            t = offset / (count - 1) if count > 1 else 1
            for name in models[lead["model"]]:
                m = LAYER.match(name)
                if not m or int(m.group(2)) != lead["layer_range"][0] + offset:
                    continue
                prefix, suffix = m.group(1), m.group(3)
                names = [f"{prefix}.{s['layer_range'][0] + offset}.{suffix}" for s in slice_["sources"]]
                plan(f"{prefix}.{out_layer}.{suffix}", slice_, names, t)
            out_layer += 1
    for name in non_layer(last, False):
        plan(name, last, [name] * len(last["sources"]), 1)
    return out


def rectify(config, name, tensors, base_name):
    rows = [x.shape[0] for _, x, _, _ in tensors]
    if len(set(rows)) == 1:
        return tensors
    source = config.get("tokenizer_source")
    source = base_name if source == "base" else source
    if source is None:
        target = min(rows)
        return [(m, x[:target], d, p) for m, x, d, p in tensors]
    fill = next(x for m, x, _, _ in tensors if m == source)
    target = fill.shape[0]
    out = []
    for m, x, d, p in tensors:
        if x.shape[0] >= target:
            out.append((m, x[:target], d, p))
        else:
            out.append((m, np.concatenate([x, fill[x.shape[0] :]]), d, p))
    return out


def main():
    configs = os.path.join(ROOT, "configs")
    os.makedirs(os.path.join(ROOT, "reference"), exist_ok=True)
    cache = {}
    for file in sorted(os.listdir(configs)):
        with open(os.path.join(configs, file)) as f:
            config = yaml.safe_load(f)
        models = {}
        refs = [config.get("base_model")] + [m["model"] for m in config.get("models", [])]
        refs += [s["model"] for sl in config.get("slices", []) for s in sl["sources"]]
        for ref in refs:
            if ref and ref not in models:
                path = os.path.normpath(os.path.join(configs, ref))
                cache.setdefault(path, read_model(path))
                models[ref] = cache[path]
        out = merge(config, models)
        write_file(os.path.join(ROOT, "reference", file.replace(".yml", ".safetensors")), out)
        print(f"{file}: {len(out)} tensors", file=sys.stderr)


main()
