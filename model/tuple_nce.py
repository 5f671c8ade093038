"""TupleInfoNCE pre-training of the encoders (Liu et al., ICCV 2021).

A tuple is one clip's (text, audio, visual). Its embedding is the concatenation of
one unit-norm projection per modality (scaled by 1/sqrt(K), so the tuple is unit-norm)
of the encoders' outputs h_m. The positive of a tuple is the same tuple under
feature-level augmentations (Gaussian noise and a time mask on the streams, token
dropout on the text). Negatives are the other tuples of the batch (weight alpha_0)
and, per modality k, the k-disturbed positive: the same tuple with modality k taken
from another sample, chosen by a derangement (weight alpha_k). The weights enter as
log-weights added to the logits, which is what duplicating a negative alpha times
would do to the softmax, without the copies.

The weights are searched in an outer loop: log-alpha ~ N(mu, sigma^2 I), B candidates
are trained briefly from the same start, each is scored by
R = sum_k A^k, the validation accuracy of telling the true tuple from its k-disturbed
version, and mu takes a REINFORCE step with the mean reward as baseline. The best
candidate's weights are kept; MMIM training then starts from its encoders.

The projection heads are not part of MMIM (its state dict stays exportable); they are
saved beside the encoders in the run folder, so a resumed run reuses both.
`python -m model.experiments.tuple_summary` compares pre-trained and plain runs.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .config import TrainConfig, TupleNCEConfig
from .files import atomic_write_text
from .run_state import derived_seed
from .data import Batch

log = logging.getLogger("mmim.tuple_nce")

REPORT_FILE = "tuple_nce.json"
ENCODERS_FILE = "tuple_nce_encoders.safetensors"
HEADS_FILE = "tuple_nce_heads.safetensors"
# What the pre-training changes in MMIM: the text and sequence encoders.
ENCODER_PREFIXES = ("text.", "encoders.")
# The random stream of the A^k evaluations, apart from every epoch's.
EVAL_STREAM = 99_991
EVAL_BATCH = 64  # inference only: larger batches are faster and change nothing


class TupleNCEError(ValueError):
    """A TupleInfoNCE setting or saved state that cannot be used as given."""


# --------------------------------------------------------------------------- pieces


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random permutation of range(n) with no fixed point (rejection sampling;
    about e draws on average)."""
    if n < 2:
        raise TupleNCEError(f"a derangement needs at least 2 items, got {n}; use a batch of 2 or more")
    identity = torch.arange(n)
    while True:
        perm = torch.randperm(n, generator=generator)
        if not (perm == identity).any():
            return perm


def disturb(blocks: dict[str, torch.Tensor], k: str, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """The k-disturbed tuples: modality k of row i comes from row perm[i]."""
    return {m: (z[perm] if m == k else z) for m, z in blocks.items()}


def tuple_embedding(blocks: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenated unit-norm blocks, scaled so the tuple is unit-norm."""
    return torch.cat(list(blocks.values()), dim=-1) / math.sqrt(len(blocks))


def tuple_nce_loss(
    anchor: dict[str, torch.Tensor],
    positive: dict[str, torch.Tensor],
    log_alpha: torch.Tensor,
    perms: dict[str, torch.Tensor],
    tau: float,
) -> torch.Tensor:
    """Mean over anchors of -log softmax(positive) among
    [positive, other tuples (+log alpha_0), k-disturbed positive (+log alpha_k) for each k].

    anchor, positive: modality -> (B, d) blocks, in the same modality order;
    log_alpha: (1 + K,), log alpha_0 then one per modality in that order.
    """
    z, p = tuple_embedding(anchor), tuple_embedding(positive)
    sim = z @ p.T / tau
    batch = sim.shape[0]
    off_diag = ~torch.eye(batch, dtype=torch.bool, device=sim.device)
    others = sim + log_alpha[0] * off_diag.to(sim.dtype)
    disturbed = [
        (z * tuple_embedding(disturb(positive, k, perms[k]))).sum(-1, keepdim=True) / tau + log_alpha[1 + i]
        for i, k in enumerate(anchor)
    ]
    logits = torch.cat([others, *disturbed], dim=1)
    return F.cross_entropy(logits, torch.arange(batch, device=sim.device))


def discrimination_accuracy(
    anchor: dict[str, torch.Tensor], clean: dict[str, torch.Tensor], perms: dict[str, torch.Tensor]
) -> dict[str, float]:
    """A^k: share of rows whose anchor scores the true tuple above its k-disturbed version."""
    z, t = tuple_embedding(anchor), tuple_embedding(clean)
    true = (z * t).sum(-1)
    return {
        k: float(((z * tuple_embedding(disturb(clean, k, perms[k]))).sum(-1) < true).float().mean())
        for k in anchor
    }


def reinforce_step(
    mu: torch.Tensor, samples: torch.Tensor, rewards: torch.Tensor, sigma: float, lr: float,
    baseline: float | None = None,
) -> torch.Tensor:
    """mu + lr * REINFORCE estimate of d E[R] / d mu for samples ~ N(mu, sigma^2 I).

    grad log N(a; mu, sigma^2 I) = (a - mu) / sigma^2; the baseline (default: the mean
    reward) removes the part of the estimate that does not depend on which sample won.
    """
    baseline = float(rewards.mean()) if baseline is None else baseline
    advantage = (rewards - baseline).unsqueeze(1)
    grad = (advantage * (samples - mu) / sigma**2).mean(0)
    return mu + lr * grad


def augment(
    batch: Batch, model, ncfg: TupleNCEConfig, generator: torch.Generator, keep_ids: torch.Tensor
) -> Batch:
    """A feature-level view of the batch: token dropout on the text (attention mask),
    noise in units of each feature's training std, and a time mask (frames set to the
    training mean) covering nce_time_mask of each stream; length-1 streams get noise only."""
    out = copy.copy(batch)
    ids, mask = batch.input_ids, batch.attention_mask
    drop = torch.rand(ids.shape, generator=generator).to(ids.device) < ncfg.nce_token_dropout
    # [CLS], [SEP] and padding stay; [CLS] is the utterance vector.
    drop &= ~torch.isin(ids, keep_ids.to(ids.device))
    out.attention_mask = mask.masked_fill(drop, 0)
    for m, encoder in model.encoders.items():
        x, lengths = getattr(batch, m), getattr(batch, f"{m}_lengths")
        steps = torch.arange(x.shape[1], device=x.device)
        valid = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        noise = torch.randn(x.shape, generator=generator).to(x.device) * encoder.feature_std
        span = (lengths.float() * ncfg.nce_time_mask).round().long()
        span = torch.where(lengths > 1, span.clamp(max=lengths - 1), torch.zeros_like(span))
        start = (torch.rand(lengths.shape, generator=generator).to(x.device) * (lengths - span + 1)).long()
        masked = (steps.unsqueeze(0) >= start.unsqueeze(1)) & (steps.unsqueeze(0) < (start + span).unsqueeze(1))
        x = torch.where(masked.unsqueeze(-1), encoder.feature_mean.expand_as(x), x + ncfg.nce_noise_std * noise)
        setattr(out, m, torch.where(valid, x, torch.zeros_like(x)))
    return out


def make_heads(model, proj_dim: int) -> nn.ModuleDict:
    """One linear projection per modality, kept outside MMIM."""
    return nn.ModuleDict({m: nn.Linear(model.dims[m], proj_dim) for m in model.config.modalities})


def embed(model, heads: nn.ModuleDict, batch: Batch) -> dict[str, torch.Tensor]:
    h = {"text": model.text(batch.input_ids, batch.attention_mask)}
    for m, encoder in model.encoders.items():
        h[m] = encoder(getattr(batch, m), getattr(batch, f"{m}_lengths"))
    return {m: F.normalize(heads[m](h[m]), dim=-1) for m in model.config.modalities}


# --------------------------------------------------------------------------- the stage


def _encoder_state(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIXES)}


def _snapshot(model, heads) -> dict:
    clone = lambda sd: {k: v.detach().clone() for k, v in sd.items()}  # noqa: E731
    return {"encoders": clone(_encoder_state(model)), "heads": clone(heads.state_dict())}


def _restore(model, heads, snap: dict) -> None:
    _load_encoders(model, snap["encoders"])
    heads.load_state_dict(snap["heads"])


def _load_encoders(model, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    wanted = set(_encoder_state(model))
    if unexpected or wanted & set(missing):
        raise TupleNCEError(
            "saved TupleInfoNCE encoders do not match this model; remove the run folder's "
            f"{ENCODERS_FILE} to pre-train again"
        )


class _Stage:
    """What one pre-training needs: data, collate, the fixed evaluation draws."""

    def __init__(self, model, splits, collate, cfg: TrainConfig):
        self.model, self.cfg, self.ncfg = model, cfg, cfg.tuple_nce
        self.train, self.valid = splits["train"], splits["valid"]
        self.collate = collate
        self.modalities = tuple(model.config.modalities)
        self.keep_ids = torch.tensor(sorted(set(collate.tokenizer.all_special_ids)))
        if len(self.train) < 2 or len(self.valid) < 2:
            raise TupleNCEError("TupleInfoNCE needs at least 2 training and 2 validation samples")

    def batches(self, generator: torch.Generator):
        """nce_steps batches, reshuffling the training set whenever it runs out."""
        size = min(self.ncfg.nce_batch_size, len(self.train))
        order: list[int] = []
        for _ in range(self.ncfg.nce_steps):
            if len(order) < size:
                order += torch.randperm(len(self.train), generator=generator).tolist()
            chunk, order = order[:size], order[size:]
            yield [self.train[i] for i in chunk]

    def train_candidate(self, heads, log_alpha: torch.Tensor, seed: int) -> float:
        """nce_steps steps with these log-weights; the same batches, augmentations and
        dropout for every candidate of a round (seed), so candidates differ only in alpha."""
        model, cfg, ncfg = self.model, self.cfg, self.ncfg
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        text = list(model.text.parameters())
        rest = list(model.encoders.parameters()) + list(heads.parameters())
        opt = torch.optim.Adam([{"params": text, "lr": cfg.lr_text}, {"params": rest, "lr": cfg.lr_main}])
        model.train()
        heads.train()
        log_alpha = log_alpha.to(cfg.device)
        losses = []
        for samples in self.batches(generator):
            batch = self.collate(samples).to(cfg.device)
            anchor = embed(model, heads, augment(batch, model, ncfg, generator, self.keep_ids))
            positive = embed(model, heads, augment(batch, model, ncfg, generator, self.keep_ids))
            perms = {m: derangement(len(samples), generator).to(cfg.device) for m in self.modalities}
            loss = tuple_nce_loss(anchor, positive, log_alpha, perms, ncfg.nce_tau)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(text + rest, cfg.clip_grad)
            opt.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    @torch.no_grad()
    def accuracy(self, heads, samples, seed: int) -> dict[str, float]:
        """A^k over `samples`, averaged over nce_eval_repeats (augmentation, derangement)
        draws; the draws depend only on seed, so every candidate meets the same ones."""
        model, cfg = self.model, self.cfg
        model.eval()
        heads.eval()
        generator = torch.Generator().manual_seed(seed)
        size = EVAL_BATCH
        batches = [self.collate(samples[i : i + size]).to(cfg.device) for i in range(0, len(samples), size)]
        clean = _cat([embed(model, heads, b) for b in batches])
        totals = dict.fromkeys(self.modalities, 0.0)
        for _ in range(self.ncfg.nce_eval_repeats):
            anchor = _cat([embed(model, heads, augment(b, model, self.ncfg, generator, self.keep_ids)) for b in batches])
            perms = {m: derangement(len(samples), generator).to(cfg.device) for m in self.modalities}
            for k, v in discrimination_accuracy(anchor, clean, perms).items():
                totals[k] += v / self.ncfg.nce_eval_repeats
        return totals


def _cat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {m: torch.cat([p[m] for p in parts]) for m in parts[0]}


def pretrain(model, splits, collate, cfg: TrainConfig) -> tuple[dict, nn.ModuleDict]:
    """Run the outer loop; leave the best candidate's encoders in `model`.

    Returns the report (mu and rewards per round, A^k before and after) and the heads.
    The global RNG is left as it was, so what follows does not depend on whether the
    stage ran or was reused.
    """
    ncfg = cfg.tuple_nce
    if ncfg.nce_candidates < 2:
        raise TupleNCEError("nce_candidates must be at least 2: the REINFORCE baseline needs a comparison")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        stage = _Stage(model, splits, collate, cfg)
        heads = make_heads(model, ncfg.nce_proj_dim).to(cfg.device)
        eval_seed = derived_seed(cfg.seed, EVAL_STREAM)
        names = ["alpha_0", *(f"alpha_{m}" for m in stage.modalities)]
        a_before = stage.accuracy(heads, stage.valid, eval_seed)
        log.info("TupleInfoNCE A^k before: %s", _fmt(a_before))
        generator = torch.Generator().manual_seed(cfg.seed)
        mu = torch.full((len(names),), float(ncfg.nce_mu_init))
        best = {"reward": sum(a_before.values()), "snapshot": _snapshot(model, heads), "round": 0, "log_alpha": None}
        rounds = []
        for r in range(1, ncfg.nce_rounds + 1):
            base = best["snapshot"]
            samples = mu + ncfg.nce_sigma * torch.randn(ncfg.nce_candidates, len(names), generator=generator)
            rewards, accs, losses = [], [], []
            for b in range(ncfg.nce_candidates):
                _restore(model, heads, base)
                losses.append(stage.train_candidate(heads, samples[b], seed=cfg.seed * 1_000 + r))
                acc = stage.accuracy(heads, stage.valid, eval_seed)
                accs.append(acc)
                rewards.append(sum(acc.values()))
                if rewards[-1] > best["reward"]:
                    best = {"reward": rewards[-1], "snapshot": _snapshot(model, heads), "round": r,
                            "log_alpha": samples[b].tolist(), "A_valid": acc}
            reward_t = torch.tensor(rewards)
            mu = reinforce_step(mu, samples, reward_t, ncfg.nce_sigma, ncfg.nce_lr_mu)
            rounds.append({
                "round": r,
                "log_alpha": samples.tolist(),
                "loss": losses,
                "A_valid": accs,
                "reward": rewards,
                "baseline": float(reward_t.mean()),
                "mu": mu.tolist(),
            })
            log.info("TupleInfoNCE round %d  R %s  mu %s", r, [round(x, 4) for x in rewards],
                     [round(x, 3) for x in mu.tolist()])
        _restore(model, heads, best["snapshot"])
        a_after = stage.accuracy(heads, stage.valid, eval_seed)
        a_test = stage.accuracy(heads, splits["test"], eval_seed) if splits.get("test") else {}
    report = {
        "weights": names,
        "mu": mu.tolist(),
        "rounds": rounds,
        "best_round": best["round"],
        "best_log_alpha": best["log_alpha"],
        "A_valid_before": a_before,
        "A_valid": a_after,
        "A_test": a_test,
        "reward": sum(a_after.values()),
        "seconds": time.perf_counter() - start,
        "config": asdict(ncfg),
        "seed": cfg.seed,
    }
    log.info("TupleInfoNCE done in %.0fs: A^k valid %s, test %s", report["seconds"], _fmt(a_after), _fmt(a_test))
    return report, heads


def _fmt(acc: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in acc.items())


def pretrain_or_reuse(model, splits, collate, cfg: TrainConfig, run_dir: Path, reuse: bool = True) -> dict:
    """Pre-train and save into run_dir, or, with reuse and a saved result for the same
    settings, load its encoders instead. Returns the report (with "reused")."""

    run_dir = Path(run_dir)
    report_path, enc_path = run_dir / REPORT_FILE, run_dir / ENCODERS_FILE
    if reuse and report_path.is_file() and enc_path.is_file():
        report = json.loads(report_path.read_text())
        if report["config"] != asdict(cfg.tuple_nce) or report["seed"] != cfg.seed:
            raise TupleNCEError(
                f"{report_path} was made with other TupleInfoNCE settings; remove it (or use --no-resume) to pre-train again"
            )
        _load_encoders(model, load_file(str(enc_path), device=cfg.device))
        log.info("reusing TupleInfoNCE encoders from %s", enc_path)
        return {**report, "reused": True}
    report, heads = pretrain(model, splits, collate, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    cpu = lambda sd: {k: v.detach().to("cpu", copy=True).contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(cpu(heads.state_dict()), str(run_dir / HEADS_FILE))
    save_file(cpu(_encoder_state(model)), str(enc_path))
    # The report goes last: its presence means the weights beside it are complete.
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    return {**report, "reused": False}
