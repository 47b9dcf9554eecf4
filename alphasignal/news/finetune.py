"""Fine-tune MiniLM for financial sentiment (torch, CPU; training only).

``alphasignal train news-model`` runs :func:`finetune`: MiniLM (the same
weights the numpy encoder runs) and a linear softmax head on the L2-normalised
mean-pooled embedding are trained end to end with cross-entropy on
``split == "train"`` rows of the Financial PhraseBank. ``method="lora"`` trains
LoRA factors on every attention and feed-forward matrix plus the biases and
LayerNorms; ``method="full"`` trains every encoder tensor (the token and
position embeddings stay frozen), with a per-layer learning-rate decay, and
saves the averaged change of each matrix truncated by SVD to ``rank``.

A stratified validation fold (by label and annotator agreement) is carved out
of the train rows; it picks each model's best epoch or the average of the
models' weights by accuracy, then log-loss, scores the delta exactly as saved
and fits the temperature that calibrates the probabilities. The test rows are
never read here. What is saved: ``adapter.npz`` (the encoder delta as low-rank
factors) and ``head.npz`` (head, temperature, training record), merged into
the numpy encoder at load time.

torch is imported inside functions only; nothing at inference imports this module.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable, InputError
from .adapter import ADAPTER_FILE, EncoderAdapter, low_rank_delta
from .calibration import expected_calibration_error, fit_temperature
from .encoder import MODEL_NAME, file_sha256, packaged_model_dir
from .model import HEAD_FILE, LABELS, MODEL_ID, Head

LORA_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


METHODS = ("lora", "full")
SCHEDULES = ("cosine", "linear")


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "lora"  # "lora": low-rank factors; "full": every encoder matrix, exported as a truncated SVD
    rank: int = 16  # LoRA rank, or with method "full" the rank the averaged delta is truncated to for export
    alpha: float = 32.0
    lr: float = 5e-4  # LoRA factors, or with method "full" the top layer's matrices
    layer_decay: float = 1.0  # method "full": each layer below the top trains at this fraction of the next one's lr
    schedule: str = "cosine"  # after the linear warm-up: "cosine" or "linear" decay to zero
    norm_lr: float = 1e-4  # biases and LayerNorms
    head_lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup: float = 0.06
    dropout: float = 0.1
    val_fraction: float = 0.15
    seed: int = 0
    soup: int = 3  # models trained with seeds seed, seed+1, ...; their weights may be averaged
    threads: int = 2
    max_length: int = 128


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(
            "fine-tuning the news model needs torch; install the CPU wheel with `pip install torch==2.13.0`"
        ) from exc
    return torch


# ---------------------------------------------------------------- the torch model


def build_model(weights: dict[str, np.ndarray], cfg: FinetuneConfig, heads: int = 12, eps: float = 1e-12):
    """MiniLM as a torch module mirroring ``MiniLMEncoder`` (post-norm BERT, mean pooling)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    _check_config(cfg)

    class LoRALinear(nn.Module):
        def __init__(self, w: np.ndarray, b: np.ndarray):
            super().__init__()
            out_dim, in_dim = w.shape
            self.register_buffer("weight", torch.from_numpy(np.array(w, dtype=np.float32)))
            self.bias = nn.Parameter(torch.from_numpy(np.array(b, dtype=np.float32)))
            self.lora_a = nn.Parameter(torch.randn(cfg.rank, in_dim) / math.sqrt(in_dim))
            self.lora_b = nn.Parameter(torch.zeros(out_dim, cfg.rank))
            self.scale = cfg.alpha / cfg.rank

        def forward(self, x):
            return F.linear(x, self.weight, self.bias) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    class FullLinear(nn.Module):
        def __init__(self, w: np.ndarray, b: np.ndarray):
            super().__init__()
            self.weight = nn.Parameter(torch.from_numpy(np.array(w, dtype=np.float32)))
            self.bias = nn.Parameter(torch.from_numpy(np.array(b, dtype=np.float32)))

        def forward(self, x):
            return F.linear(x, self.weight, self.bias)

    Linear = LoRALinear if cfg.method == "lora" else FullLinear

    def norm(prefix: str) -> nn.LayerNorm:
        ln = nn.LayerNorm(weights[prefix + ".weight"].shape[0], eps=eps)
        ln.weight.data = torch.from_numpy(np.array(weights[prefix + ".weight"], dtype=np.float32))
        ln.bias.data = torch.from_numpy(np.array(weights[prefix + ".bias"], dtype=np.float32))
        return ln

    class Layer(nn.Module):
        def __init__(self, p: str):
            super().__init__()
            self.lin = nn.ModuleDict(
                {t.replace(".", "_"): Linear(weights[f"{p}{t}.weight"], weights[f"{p}{t}.bias"]) for t in LORA_TARGETS}
            )
            self.ln1 = norm(p + "attention.output.LayerNorm")
            self.ln2 = norm(p + "output.LayerNorm")
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x, bias):
            n, length, hidden = x.shape
            d = hidden // heads
            lin = self.lin

            def split(t):
                return t.view(n, length, heads, d).transpose(1, 2)

            q = split(lin["attention_self_query"](x)) / math.sqrt(d)
            k, v = split(lin["attention_self_key"](x)), split(lin["attention_self_value"](x))
            probs = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)
            ctx = (self.drop(probs) @ v).transpose(1, 2).reshape(n, length, hidden)
            x = self.ln1(self.drop(lin["attention_output_dense"](ctx)) + x)
            h = F.gelu(lin["intermediate_dense"](x))
            return self.ln2(self.drop(lin["output_dense"](h)) + x)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            const = lambda k: torch.from_numpy(np.array(weights[k], dtype=np.float32))  # noqa: E731
            self.register_buffer("word", const("embeddings.word_embeddings.weight"))
            self.register_buffer("pos", const("embeddings.position_embeddings.weight"))
            self.register_buffer("type0", const("embeddings.token_type_embeddings.weight")[0].clone())
            self.ln = norm("embeddings.LayerNorm")
            n_layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
            self.layers = nn.ModuleList([Layer(f"encoder.layer.{i}.") for i in range(n_layers)])
            self.drop = nn.Dropout(cfg.dropout)
            self.head = nn.Linear(self.word.shape[1], len(LABELS))
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def embed(self, ids, mask):
            x = self.drop(self.ln(self.word[ids] + self.pos[: ids.shape[1]] + self.type0))
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]
            for layer in self.layers:
                x = layer(x, bias)
            pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1e-9)
            return F.normalize(pooled, dim=-1)

        def forward(self, ids, mask):
            return self.head(self.drop(self.embed(ids, mask)))

    return Classifier()


def export(
    states: list[dict], cfg: FinetuneConfig, base_sha256: str, meta: dict, base_weights: Optional[dict] = None
) -> tuple[EncoderAdapter, np.ndarray, np.ndarray]:
    """The average of one or more snapshots (``state_dict``s) as an ``EncoderAdapter`` + head.

    LoRA: averaging k snapshots is exact at rank k·r: ``mean_k(B_k A_k) = [B_1 … B_k]/k · [A_1; …; A_k]``.
    Full fine-tuning: the averaged change of each matrix, truncated to rank ``cfg.rank`` by SVD
    (:func:`low_rank_delta`), so the package holds factors, not matrices; ``base_weights`` (the
    pretrained tensors the change is measured from) is then required.
    """
    if cfg.method == "full" and base_weights is None:
        raise InputError("exporting a fully fine-tuned encoder needs the base weights it started from")
    k = len(states)

    def mean(key: str) -> np.ndarray:
        return sum(_np(s[key]) for s in states) / k

    n_layers = 1 + max(int(key.split(".")[1]) for key in states[0] if key.startswith("layers."))
    lora, full = {}, {}
    for i in range(n_layers):
        p, q = f"encoder.layer.{i}.", f"layers.{i}."
        for target in LORA_TARGETS:
            t = f"{q}lin.{target.replace('.', '_')}."
            if cfg.method == "full":
                change = mean(t + "weight") - base_weights[f"{p}{target}.weight"]
                lora[f"{p}{target}.weight"] = low_rank_delta(change, cfg.rank)
            else:
                a = np.concatenate([_np(s[t + "lora_a"]) for s in states], axis=0)
                b = np.concatenate([_np(s[t + "lora_b"]) for s in states], axis=1) / k
                lora[f"{p}{target}.weight"] = (a, b)
            full[f"{p}{target}.bias"] = mean(t + "bias")
        for name, ln in (("attention.output.LayerNorm", "ln1"), ("output.LayerNorm", "ln2")):
            full[f"{p}{name}.weight"], full[f"{p}{name}.bias"] = mean(f"{q}{ln}.weight"), mean(f"{q}{ln}.bias")
    full["embeddings.LayerNorm.weight"], full["embeddings.LayerNorm.bias"] = mean("ln.weight"), mean("ln.bias")
    adapter = EncoderAdapter(
        lora=lora, full=full, scale=1.0 if cfg.method == "full" else cfg.alpha / cfg.rank,
        base_sha256=base_sha256, meta={**meta, "snapshots_averaged": k},
    )
    return adapter, mean("head.weight").astype(np.float64), mean("head.bias").astype(np.float64)


def load_average(model, states: list[dict]) -> None:
    """Put the average of ``states`` into ``model`` (LoRA merged into the frozen weights)."""
    torch = _torch()
    k = len(states)
    avg = {key: sum(s[key] for s in states) / k for key in states[0] if "lora_" not in key}
    avg.update({key: value for key, value in model.state_dict().items() if key in _CONSTANT})
    for name, module in model.named_modules():
        if hasattr(module, "lora_a"):
            delta = sum(s[f"{name}.lora_b"] @ s[f"{name}.lora_a"] for s in states) * (module.scale / k)
            avg[f"{name}.weight"] = states[0][f"{name}.weight"] + delta
            avg[f"{name}.lora_a"] = torch.zeros_like(module.lora_a)
            avg[f"{name}.lora_b"] = torch.zeros_like(module.lora_b)
    model.load_state_dict(avg)


def load_merged(model, merged: dict[str, np.ndarray], head_weight: np.ndarray, head_bias: np.ndarray) -> None:
    """Put merged encoder weights (``EncoderAdapter.apply``'s output) and a head into ``model``,
    so validation scores exactly what is saved (SVD truncation and float16 factors included)."""
    torch = _torch()
    state = model.state_dict()

    def put(ours: str, theirs: str) -> None:
        for part in ("weight", "bias"):
            state[f"{ours}.{part}"] = torch.from_numpy(np.array(merged[f"{theirs}.{part}"], dtype=np.float32))

    for i in range(len(model.layers)):
        p, q = f"encoder.layer.{i}.", f"layers.{i}."
        for target in LORA_TARGETS:
            t = f"{q}lin.{target.replace('.', '_')}"
            put(t, p + target)
            if t + ".lora_b" in state:
                state[t + ".lora_b"] = torch.zeros_like(state[t + ".lora_b"])
        put(q + "ln1", p + "attention.output.LayerNorm")
        put(q + "ln2", p + "output.LayerNorm")
    put("ln", "embeddings.LayerNorm")
    state["head.weight"] = torch.from_numpy(np.array(head_weight, dtype=np.float32))
    state["head.bias"] = torch.from_numpy(np.array(head_bias, dtype=np.float32))
    model.load_state_dict(state)


def _check_config(cfg: FinetuneConfig) -> None:
    if cfg.method not in METHODS:
        raise InputError(f"unknown fine-tuning method {cfg.method!r}; use one of {', '.join(METHODS)}")
    if cfg.schedule not in SCHEDULES:
        raise InputError(f"unknown learning-rate schedule {cfg.schedule!r}; use one of {', '.join(SCHEDULES)}")
    if cfg.rank < 1 or not 0.0 < cfg.layer_decay <= 1.0:
        raise InputError(f"rank must be >= 1 and layer_decay in (0, 1], got {cfg.rank} and {cfg.layer_decay}")


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------- data


def stratified_holdout(labels: np.ndarray, agreement: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a validation fold, stratified by (label, agreement)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), dtype=bool)
    for key in sorted(set(zip(labels.tolist(), agreement.tolist()))):
        idx = np.flatnonzero((labels == key[0]) & (agreement == key[1]))
        rng.shuffle(idx)
        val[idx[: int(round(len(idx) * fraction))]] = True
    return val


def _batches(ids: list[list[int]], order: Sequence[int], size: int):
    torch = _torch()
    for start in range(0, len(order), size):
        rows = list(order[start : start + size])
        length = max(len(ids[i]) for i in rows)
        tok = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.float32)
        for r, i in enumerate(rows):
            tok[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1.0
        yield rows, tok, mask


def predict_logits(model, ids: list[list[int]], batch_size: int = 64) -> np.ndarray:
    torch = _torch()
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), len(LABELS)), dtype=np.float64)
    with torch.no_grad():
        for rows, tok, mask in _batches(ids, order, batch_size):
            out[rows] = model(tok, mask).double().numpy()
    return out


# ---------------------------------------------------------------- training


def init_head(model, ids: list[list[int]], labels: np.ndarray, seed: int) -> float:
    """Start the head from a logistic regression on the frozen embeddings (linear probe, then
    fine-tune): a zero or random head sends noise into the encoder for the first epoch."""
    torch = _torch()
    from .train import DEFAULT_CS, _logreg, _single_threaded_blas, select_c

    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    x = np.zeros((len(ids), model.head.in_features), dtype=np.float32)
    with torch.no_grad():
        for rows, tok, mask in _batches(ids, order, 64):
            x[rows] = model.embed(tok, mask).numpy()
    with _single_threaded_blas():
        c, _ = select_c(x, labels, cs=DEFAULT_CS, folds=3, seed=seed)
        clf = _logreg(c, seed).fit(x, labels)
    model.head.weight.data = torch.from_numpy(clf.coef_.astype(np.float32))
    model.head.bias.data = torch.from_numpy(clf.intercept_.astype(np.float32))
    return c


def _optimizer(model, cfg: FinetuneConfig, steps: int):
    torch = _torch()
    opt = torch.optim.AdamW(_param_groups(model, cfg))
    warm = max(1, int(cfg.warmup * steps))

    def schedule(step: int) -> float:  # linear warm-up, then cosine or linear decay to zero
        if step < warm:
            return (step + 1) / warm
        done = (step - warm) / max(1, steps - warm)
        return 0.5 * (1 + math.cos(math.pi * done)) if cfg.schedule == "cosine" else max(0.0, 1.0 - done)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def _param_groups(model, cfg: FinetuneConfig) -> list[dict]:
    """LoRA: factors at ``lr``, biases/LayerNorms at ``norm_lr``. Full: every encoder tensor at
    ``lr · layer_decay^(depth from the top)`` (the embedding LayerNorm is the deepest), matrices
    with weight decay. The head trains at ``head_lr`` either way."""
    named = list(model.named_parameters())
    if cfg.method == "lora":
        pick = lambda test: [p for n, p in named if test(n)]  # noqa: E731
        return [
            {"params": pick(lambda n: "lora_" in n), "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": pick(lambda n: "lora_" not in n and not n.startswith("head.")), "lr": cfg.norm_lr,
             "weight_decay": 0.0},
            {"params": pick(lambda n: n.startswith("head.")), "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    n_layers = len(model.layers)
    groups = []
    for name, p in named:
        if name.startswith("head."):
            groups.append({"params": [p], "lr": cfg.head_lr, "weight_decay": 0.0})
            continue
        depth = int(name.split(".")[1]) + 1 if name.startswith("layers.") else 0
        matrix = ".lin." in name and name.endswith(".weight")
        lr = cfg.lr * cfg.layer_decay ** (n_layers - depth)
        groups.append({"params": [p], "lr": lr, "weight_decay": cfg.weight_decay if matrix else 0.0})
    return groups


def train_epochs(model, ids, labels, cfg: FinetuneConfig, on_epoch=None, log=print) -> None:
    """Train for ``cfg.epochs``; ``on_epoch(epoch)`` runs after each (evaluation, snapshots)."""
    torch = _torch()
    rng = np.random.default_rng(cfg.seed)
    steps = cfg.epochs * math.ceil(len(ids) / cfg.batch_size)
    opt, sched = _optimizer(model, cfg, steps)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        started, total, seen = time.perf_counter(), 0.0, 0
        for rows, tok, mask in _batches(ids, _bucketed_order(ids, cfg.batch_size, rng), cfg.batch_size):
            loss = torch.nn.functional.cross_entropy(model(tok, mask), y[rows])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
            if seen // (cfg.batch_size * 25) != (seen - len(rows)) // (cfg.batch_size * 25):
                log(f"  epoch {epoch}: {seen}/{len(ids)} rows, loss {total / seen:.4f}")
        log(f"epoch {epoch}: train loss {total / len(ids):.4f} ({time.perf_counter() - started:.0f} s)")
        if on_epoch is not None:
            on_epoch(epoch)


def _bucketed_order(ids: list[list[int]], size: int, rng) -> list[int]:
    """Shuffled batches of similar length (less padding), in shuffled batch order."""
    order = rng.permutation(len(ids))
    chunks = [order[i : i + size * 20] for i in range(0, len(order), size * 20)]
    batches = []
    for chunk in chunks:
        chunk = sorted(chunk, key=lambda i: len(ids[i]))
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return [int(i) for b in batches for i in b]


def finetune(
    data_csv: Path,
    out_dir: Path,
    cfg: FinetuneConfig = FinetuneConfig(),
    *,
    model_dir: Optional[Path] = None,
    log=print,
) -> dict:
    """Fine-tune on the train rows, pick the epoch and temperature on a validation fold, save."""
    from .encoder import _load_tokenizer, _read_config
    from .train import load_split

    torch = _torch()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    model_dir = Path(model_dir) if model_dir is not None else packaged_model_dir()
    train = load_split(data_csv, "train")
    absent = [label for i, label in enumerate(LABELS) if not (train.labels == i).any()]
    if absent:
        raise InputError(f"{data_csv} has no training rows labelled {absent}; every label needs examples")
    from safetensors.numpy import load_file

    base_sha = file_sha256(model_dir / "model.safetensors")
    weights = load_file(str(model_dir / "model.safetensors"))
    config = _read_config(model_dir)
    tokenizer = _load_tokenizer(model_dir / "tokenizer.json", min(cfg.max_length, config.max_seq_length))
    ids = [tokenizer.encode(t).ids for t in train.texts]
    val = stratified_holdout(train.labels, train.agreement, cfg.val_fraction, cfg.seed)
    fit_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    val_ids, val_y, val_agree = [ids[i] for i in val_idx], train.labels[val_idx], train.agreement[val_idx]
    fit_ids, fit_y = [ids[i] for i in fit_idx], train.labels[fit_idx]
    history: list[dict] = []
    members: list[list[dict]] = []
    probe = None
    for k in range(cfg.soup):
        member_cfg = replace(cfg, seed=cfg.seed + k)
        torch.manual_seed(member_cfg.seed)
        model = build_model(weights, member_cfg, heads=config.num_heads, eps=config.layer_norm_eps)
        if probe is None:  # every model starts from the same probe head, which keeps their weights averageable
            log(f"linear probe: C={init_head(model, fit_ids, fit_y, cfg.seed):g}")
            probe = (model.head.weight.detach().clone(), model.head.bias.detach().clone())
        model.head.weight.data, model.head.bias.data = probe[0].clone(), probe[1].clone()
        members.append(_train_member(model, member_cfg, fit_ids, fit_y, (val_ids, val_y, val_agree), history, log))
    chosen = choose_snapshots(model, members, history, val_ids, val_y, val_agree, log)
    meta = {"method": cfg.method, "rank": cfg.rank, "targets": list(LORA_TARGETS)}
    adapter, w, b = export(chosen["states"], cfg, base_sha, meta, base_weights=weights)
    out_dir = Path(out_dir)
    adapter_path = adapter.save(out_dir / ADAPTER_FILE)
    saved = EncoderAdapter.load(adapter_path)
    load_merged(model, saved.apply(weights, base_sha), w, b)
    logits = predict_logits(model, val_ids)
    exported = _val_metrics(logits, val_y, val_agree)
    log(f"as saved ({cfg.method}, rank {cfg.rank}, float16 factors): {exported}")
    temperature = fit_temperature(logits, val_y)
    record = {
        "model_id": MODEL_ID,
        "encoder": MODEL_NAME,
        "encoder_sha256": base_sha,
        "data": Path(data_csv).name,
        "n_train": int(len(fit_idx)),
        "n_validation": int(len(val_idx)),
        "train_label_counts": {LABELS[i]: int((train.labels[fit_idx] == i).sum()) for i in range(len(LABELS))},
        "config": asdict(cfg),
        "history": history,
        "chosen": chosen["name"],
        "validation": exported,
        "validation_before_export": chosen["row"],
        "temperature": round(temperature, 4),
        "validation_ece_after": round(expected_calibration_error(_softmax(logits / temperature), val_y), 4),
        "train_seconds": round(time.perf_counter() - started, 1),
        "adapter_sha256": saved.sha256,
        "adapter_bytes": adapter_path.stat().st_size,
    }
    head = Head(weight=w, bias=b, encoder_identity=base_sha, meta=record)
    record["head_path"] = str(head.save(out_dir / HEAD_FILE))
    record["adapter_path"] = str(adapter_path)
    return record


def _train_member(model, cfg: FinetuneConfig, fit_ids, fit_y, val, history: list[dict], log) -> list[dict]:
    """Linear probe, then fine-tune one model; its per-epoch snapshots (``state_dict`` copies)."""
    val_ids, val_y, val_agree = val
    snapshots: list[dict] = []

    def on_epoch(epoch: int) -> None:
        row = {"seed": cfg.seed, "epoch": epoch, **_val_metrics(predict_logits(model, val_ids), val_y, val_agree)}
        history.append(row)
        log(f"  validation: {row}")
        if epoch > 0:
            snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items() if k not in _CONSTANT})

    on_epoch(0)
    train_epochs(model, fit_ids, fit_y, cfg, on_epoch=on_epoch, log=log)
    return snapshots


_CONSTANT = ("word", "pos", "type0")  # frozen embedding buffers: not worth a copy per snapshot


def choose_snapshots(model, members, history, val_ids, val_y, val_agree, log) -> dict:
    """By validation accuracy, then log-loss: each model's best epoch, or the average ("soup") of
    every model's last epoch. Averaging fine-tunes that share a start (the pretrained weights and the
    linear-probe head) is a cheap ensemble that costs nothing at inference."""
    candidates = []
    for snapshots, seed in zip(members, sorted({row["seed"] for row in history})):
        rows = [row for row in history if row["seed"] == seed and row["epoch"] > 0]
        best = min(rows, key=_rank)
        candidates.append({"name": f"seed {seed} epoch {best['epoch']}", "states": [snapshots[best["epoch"] - 1]], "row": best})
    if len(members) > 1:
        states = [snapshots[-1] for snapshots in members]
        load_average(model, states)
        row = _val_metrics(predict_logits(model, val_ids), val_y, val_agree)
        log(f"  average of {len(states)} models' last epochs: {row}")
        candidates.append({"name": f"average of {len(states)} models' last epochs", "states": states, "row": row})
    chosen = min(candidates, key=lambda c: _rank(c["row"]))
    log(f"chosen: {chosen['name']}")
    return chosen


def _rank(row: dict) -> tuple[float, float]:
    return (-row["accuracy"], row["log_loss"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _val_metrics(logits: np.ndarray, y: np.ndarray, agreement: np.ndarray) -> dict:
    probs = _softmax(logits)
    pred = probs.argmax(axis=1)
    top = agreement == 100
    return {
        "accuracy": round(float(np.mean(pred == y)), 4),
        "accuracy_agree100": round(float(np.mean(pred[top] == y[top])), 4) if top.any() else None,
        "log_loss": round(float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12))), 4),
        "ece": round(expected_calibration_error(probs, y), 4),
    }
