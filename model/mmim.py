"""MMIM: Han, Chen and Poria, EMNLP 2021.

Text (BERT [CLS]) and LSTM audio/visual encoders feed a fusion MLP that
regresses sentiment. Two families of MI terms regularise the representations:
a Barber-Agakov bound between text and each non-verbal modality, and CPC
(InfoNCE) between the fusion vector and every modality.

Any modality may be absent from a row (an all-zero attention mask, or a
stream of length 0). Its representation is then a learned "absent" vector,
trained by modality dropout, and the MI terms and diagnostics use only the
rows where the modality is present.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import SCORE_RANGE, ModelConfig
from .encoders import SequenceEncoder, TextEncoder
from .mi import BABound, CPC
from .shapley import interaction_matrix, pairs, shapley_matrix

QUANTILES = 101  # 0th, 1st, ..., 100th percentile of each MI diagnostic over the training set


class FusionHead(nn.Module):
    """concat -> dropout -> Linear -> tanh -> Linear -> tanh (fusion) -> Linear (score)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.layer1 = nn.Linear(in_dim, hidden)
        self.layer2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fusion = torch.tanh(self.layer2(torch.tanh(self.layer1(self.dropout(x)))))
        return fusion, self.out(fusion).squeeze(-1)


class TrainingReference(nn.Module):
    """Statistics of one modality's training representations, for diagnostics: the mean
    (the baseline of contributions and Shapley values), a bank of samples (CPC), and
    the quantiles of its CPC and (text -> m) BA values over the training set (NaN until
    stored), which turn a clip's nats into a percentile."""

    def __init__(self, dim: int, bank_size: int, has_ba: bool):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("bank", torch.zeros(bank_size, dim))
        self.register_buffer("cpc_quantiles", torch.full((QUANTILES,), float("nan")))
        if has_ba:
            self.register_buffer("ba_quantiles", torch.full((QUANTILES,), float("nan")))


def percentile(x: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Where x falls in a distribution given by its 0th..100th percentiles, in [0, 100],
    interpolated linearly between neighbouring quantiles; NaN when none are stored."""
    n = quantiles.shape[0] - 1
    k = (x.unsqueeze(-1) >= quantiles).sum(-1) - 1  # -1 below the minimum, n at or above the maximum
    lo_k = k.clamp(0, n - 1)
    lo, hi = quantiles[lo_k], quantiles[lo_k + 1]
    frac = ((x - lo) / (hi - lo).clamp_min(1e-12)).clamp(0.0, 1.0)
    pct = torch.where(k < 0, torch.zeros_like(x), torch.where(k >= n, torch.full_like(x, 100.0), (lo_k + frac) * (100.0 / n)))
    return torch.where(torch.isnan(quantiles[0]), torch.full_like(x, float("nan")), pct)


class MMIM(nn.Module):
    def __init__(self, config: ModelConfig, pretrained_text: bool = True):
        super().__init__()
        self.config = config
        self.text = TextEncoder(config.text_encoder, pretrained=pretrained_text, pooling=config.text_pooling,
                                frozen_layers=config.text_frozen_layers)
        dims = {"text": self.text.out_dim}
        self.encoders = nn.ModuleDict()
        for m in config.nonverbal:
            self.encoders[m] = SequenceEncoder(
                getattr(config, f"{m}_dim"),
                config.seq_hidden,
                config.seq_out,
                config.seq_layers,
                config.seq_bidirectional,
                config.seq_dropout,
                mean_pool=m in config.mean_pool,
            )
            dims[m] = config.seq_out
        self.dims = dims
        self.fusion = FusionHead(sum(dims.values()), config.fusion_hidden, config.fusion_dropout)
        self.ba = nn.ModuleDict(
            {m: BABound(dims["text"], dims[m], config.mi_dim, config.mmilb_hidden) for m in config.nonverbal}
        )
        self.cpc = nn.ModuleDict({m: CPC(config.fusion_hidden, dims[m]) for m in config.modalities})
        self.reference = nn.ModuleDict(
            {m: TrainingReference(dims[m], config.diagnostic_bank, m in config.nonverbal) for m in config.modalities}
        )
        self.absent = nn.ParameterDict({m: nn.Parameter(torch.zeros(dims[m])) for m in config.modalities})
        if config.unimodal_heads:
            self.unimodal = nn.ModuleDict({m: nn.Linear(dims[m], 1) for m in config.modalities})
        # Exact Shapley values and pairwise interactions are linear in the 2^M coalition
        # scores: constant maps, not learned and not saved.
        n = len(config.modalities)
        self.register_buffer("shapley_map", torch.tensor(shapley_matrix(n), dtype=torch.float32), persistent=False)
        self.register_buffer("interaction_map", torch.tensor(interaction_matrix(n), dtype=torch.float32), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
        visual: torch.Tensor | None = None,
        visual_lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        streams = {"audio": (audio, audio_lengths), "visual": (visual, visual_lengths)}
        present = {"text": attention_mask[:, 0] > 0}
        # An absent transcript still runs through the encoder, on its first token alone, so
        # that no row is all-masked (NaN-prone); its output is replaced below. One token, not
        # the whole padded row: the cost is nil, and a frozen-prefix memo sees one sequence.
        first_token = (torch.arange(attention_mask.shape[1], device=attention_mask.device) == 0).to(attention_mask.dtype)
        safe_mask = torch.where(present["text"].unsqueeze(1), attention_mask, first_token.expand_as(attention_mask))
        h = {"text": self.text(input_ids, safe_mask)}
        for m, encoder in self.encoders.items():
            x, lengths = streams[m]
            if x is None or lengths is None:
                raise ValueError(f"this model needs the {m} stream and its lengths")
            present[m] = lengths > 0
            h[m] = encoder(x, lengths)
        h = {m: torch.where(present[m].unsqueeze(1), v, self.absent[m].expand_as(v)) for m, v in h.items()}
        fusion, raw = self.fusion(torch.cat([h[m] for m in self.config.modalities], dim=-1))
        out = {"score": raw.clamp(-SCORE_RANGE, SCORE_RANGE), "raw_score": raw, "fusion": fusion}
        out.update({f"h_{m}": v for m, v in h.items()})
        out.update({f"present_{m}": v for m, v in present.items()})
        if self.config.unimodal_heads:
            out.update({f"unimodal_{m}": head(h[m]).squeeze(-1) for m, head in self.unimodal.items()})
        return out

    @staticmethod
    def pair_rows(out: dict[str, torch.Tensor], m: str) -> torch.Tensor:
        """Rows where both text and m are present: the only ones a BA term may use."""
        return out["present_text"] & out[f"present_{m}"]

    def likelihood_terms(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Stage 1: mean log q(z_m | h_t), with gradients to the q networks only."""
        terms = {}
        for m, ba in self.ba.items():
            rows = self.pair_rows(out, m)
            if rows.any():
                terms[m] = ba.fit_likelihood(out["h_text"][rows], out[f"h_{m}"][rows])
        return terms

    def mi_terms(self, out: dict[str, torch.Tensor], labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Stage 2: the BA bounds and CPC estimates, with gradients to the representations.

        A term whose rows are too few to estimate it (BA: none, CPC: fewer than 2) is left out.
        """
        terms = {}
        for m, ba in self.ba.items():
            rows = self.pair_rows(out, m)
            if rows.any():
                row_labels = None if labels is None else labels[rows]
                for name, value in ba(out["h_text"][rows], out[f"h_{m}"][rows], row_labels).items():
                    terms[f"ba_{m}_{name}"] = value
        for m, cpc in self.cpc.items():
            rows = out[f"present_{m}"]
            if int(rows.sum()) >= 2:
                terms[f"cpc_{m}"] = cpc(out["fusion"][rows], out[f"h_{m}"][rows])
        return terms

    def diagnostics(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-clip diagnostics, each of shape (B,), from statistics stored at training time.

        - ba_text_<m>: log q(z_m | h_t) + H(z_m), H over the training set (nats).
        - cpc_<m>: InfoNCE of the clip's h_m against the training bank (nats, at most log K).
        - <name>_percentile: where that value falls among the training clips' values (0-100).
        - shapley_<m>: exact Shapley value of m in the game whose players are the present
          modalities, a coalition's value being the score with the others at their training
          mean. They sum to score - shapley_baseline (every present modality at its mean).
          An absent modality keeps its "absent" vector in every coalition: it is a null
          player, with value 0.
        - interaction_<a>_<b>: the Shapley interaction index of the pair (score units).
        - contribution_<m>: leave-one-out, the score minus the score with h_m at its
          training mean; 0 where m is absent.
        BA and CPC of an absent modality are computed on the absent vector and mean
        nothing: callers show them as absent.
        """
        diag = {}
        for m, ba in self.ba.items():
            diag[f"ba_text_{m}"] = ba.log_likelihood(out["h_text"], out[f"h_{m}"]) + ba.entropy
            diag[f"ba_text_{m}_percentile"] = percentile(diag[f"ba_text_{m}"], self.reference[m].ba_quantiles)
        for m, cpc in self.cpc.items():
            diag[f"cpc_{m}"] = cpc.single_clip(out["fusion"], out[f"h_{m}"], self.reference[m].bank)
            diag[f"cpc_{m}_percentile"] = percentile(diag[f"cpc_{m}"], self.reference[m].cpc_quantiles)
        modalities = self.config.modalities
        for m in modalities:
            parts = [
                self.reference[k].mean.expand_as(out[f"h_{k}"]) if k == m else out[f"h_{k}"]
                for k in modalities
            ]
            _, raw = self.fusion(torch.cat(parts, dim=-1))
            contribution = out["score"] - raw.clamp(-SCORE_RANGE, SCORE_RANGE)
            diag[f"contribution_{m}"] = torch.where(out[f"present_{m}"], contribution, torch.zeros_like(contribution))
        values = self.coalition_scores(out)  # (2^M, B)
        for m, phi in zip(modalities, self.shapley_map @ values):
            diag[f"shapley_{m}"] = phi
        for (i, j), index in zip(pairs(len(modalities)), self.interaction_map @ values):
            diag[f"interaction_{modalities[i]}_{modalities[j]}"] = index
        diag["shapley_baseline"] = values[0]
        return diag

    def coalition_scores(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """(2^M, B): the clamped score of every coalition of modalities, in one fusion pass.

        Coalition c keeps h_m where bit i of c is set (m = modalities[i]); elsewhere a present
        modality is replaced by its training mean and an absent one keeps its absent vector.
        The full coalition reproduces the score.
        """
        modalities = self.config.modalities
        batch = out["score"].shape[0]
        rows = []
        for c in range(2 ** len(modalities)):
            parts = []
            for i, m in enumerate(modalities):
                h = out[f"h_{m}"]
                if not c >> i & 1:
                    h = torch.where(out[f"present_{m}"].unsqueeze(1), self.reference[m].mean.expand_as(h), h)
                parts.append(h)
            rows.append(torch.cat(parts, dim=-1))
        _, raw = self.fusion(torch.cat(rows, dim=0))
        return raw.clamp(-SCORE_RANGE, SCORE_RANGE).reshape(len(rows), batch)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Text encoder, likelihood networks q (stage 1) and everything else."""
        groups = {"text": [], "mmilb": [], "main": []}
        for name, p in self.named_parameters():
            if name.startswith("text."):
                groups["text"].append(p)
            elif name.startswith("ba.") and ".q." in name:
                groups["mmilb"].append(p)
            else:
                groups["main"].append(p)
        return groups
