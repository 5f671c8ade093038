"""Text and sequence encoders.

The text encoder is any local Hugging Face BERT- or MPNet-family directory (see
model/text_models.py for where they come from); the sequence encoder
is an LSTM that runs on padded tensors, so it exports to ONNX (packed sequences
do not) and gives the same result as a packed LSTM.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .text_models import resolve_text_encoder

# Nothing may be fetched from a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


POOLING = ("cls", "mean")


class TextEncoder(nn.Module):
    """BERT- or MPNet-family encoder. The utterance vector is the first token of the last
    layer ([CLS] / <s>, as MMIM does) or, with pooling="mean", the mean over the real
    tokens (how sentence-transformers checkpoints such as MiniLM and MPNet were trained).

    Only input ids and the attention mask go in: MPNet has no token type ids, so no
    caller may rely on them."""

    def __init__(self, path: str, pretrained: bool = True, pooling: str = "cls", frozen_layers: int = 0):
        super().__init__()
        import transformers
        from transformers import AutoConfig, AutoModel

        # The load report lists the unused pooler of sentence-transformer weights; it is noise.
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        path = resolve_text_encoder(path)
        if pretrained:
            self.bert = AutoModel.from_pretrained(path, add_pooling_layer=False)
        else:
            # Weights come from a checkpoint afterwards; only the shape is needed.
            self.bert = AutoModel.from_config(AutoConfig.from_pretrained(path), add_pooling_layer=False)
        self.out_dim = self.bert.config.hidden_size
        if pooling not in POOLING:
            raise ValueError(f"unknown text pooling {pooling!r}; choose from {POOLING}")
        self.pooling = pooling
        layers = len(self.bert.encoder.layer)
        if not 0 <= frozen_layers <= layers:
            raise ValueError(f"frozen_layers must be in 0..{layers} for this encoder, not {frozen_layers}")
        self.frozen_layers = frozen_layers
        if frozen_layers:
            for p in self.bert.embeddings.parameters():
                p.requires_grad_(False)
            for layer in self.bert.encoder.layer[:frozen_layers]:
                for p in layer.parameters():
                    p.requires_grad_(False)
        # A model.text_prefix.PrefixMemo, set by training: the frozen part's outputs, computed once.
        self.memo = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.frozen_layers and (self.training or self.memo is not None):
            hidden = self.memo.lookup(self, input_ids, attention_mask) if self.memo else self.lower(input_ids, attention_mask)
            hidden = self.upper(hidden, attention_mask)
        else:
            # In eval mode lower + upper gives what this one call gives (tested), and it exports as one graph.
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool(hidden, attention_mask)

    @torch.no_grad()
    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The frozen embeddings and lower layers, always in eval mode (no dropout): what they
        give depends on the tokens alone, so it can be cached."""
        was_training = self.training
        self.eval()
        try:
            hidden = self.bert.embeddings(input_ids=input_ids)
            return self._layers(hidden, attention_mask, self.bert.encoder.layer[: self.frozen_layers])
        finally:
            self.train(was_training)

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._layers(hidden, attention_mask, self.bert.encoder.layer[self.frozen_layers :])

    def _layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, layers) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        if not len(layers):
            return hidden
        mask = create_bidirectional_mask(config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask)
        # MPNet's layers take a relative position bias; BERT's have none.
        extra = {"position_bias": self.bert.encoder.compute_position_bias(hidden)} if hasattr(
            self.bert.encoder, "compute_position_bias") else {}
        for layer in layers:
            out = layer(hidden, mask, **extra)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first `length` steps; padding stays at the end.

    Applying it twice gives back the input.
    """
    batch, steps = x.shape[:2]
    t = torch.arange(steps, device=x.device).unsqueeze(0).expand(batch, steps)
    last = (lengths - 1).unsqueeze(1)
    index = torch.where(t <= last, last - t, t)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class MaskedLSTM(nn.Module):
    """A (bi)directional multi-layer LSTM over padded batches.

    Returns the final state of the last layer (both directions concatenated),
    exactly as a packed LSTM's h_n would give it.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False):
        super().__init__()
        self.bidirectional = bidirectional
        self.out_dim = hidden_size * (2 if bidirectional else 1)
        sizes = [input_size] + [self.out_dim] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(s, hidden_size, batch_first=True) for s in sizes)
        self.backward_layers = (
            nn.ModuleList(nn.LSTM(s, hidden_size, batch_first=True) for s in sizes) if bidirectional else None
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # A zero-length row would gather index -1; its value is unused by callers.
        lengths = lengths.clamp(min=1)
        rows = torch.arange(x.shape[0], device=x.device)
        for i, fwd in enumerate(self.forward_layers):
            out_f, _ = fwd(x)
            if self.bidirectional:
                out_b, _ = self.backward_layers[i](reverse_within_length(x, lengths))
                out_b = reverse_within_length(out_b, lengths)
                x = torch.cat([out_f, out_b], dim=-1)
            else:
                x = out_f
        last_f = x[rows, lengths - 1, : self.forward_layers[0].hidden_size]
        if not self.bidirectional:
            return last_f
        # The backward direction ends at step 0 of the original order.
        last_b = x[:, 0, self.forward_layers[0].hidden_size :]
        return torch.cat([last_f, last_b], dim=-1)


class SequenceEncoder(nn.Module):
    """Normalise features, run the masked LSTM, project to `out_dim`.

    The normalisation statistics are buffers filled from the training set, so
    a checkpoint (and its ONNX export) takes raw features. With mean_pool, the
    projection also sees the mean of the normalised frames over the sequence: a
    direct linear path for wide frame features (Whisper's 512-d voice frames),
    which a 16-unit LSTM squeezes too hard (RAVDESS held-out valence: a ridge
    regression on mean-pooled frames reaches Corr 0.77, the LSTM path 0.20).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int, bidirectional: bool, dropout: float,
                 mean_pool: bool = False):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.rnn = MaskedLSTM(in_dim, hidden, layers, bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.mean_pool = mean_pool
        self.proj = nn.Linear(self.rnn.out_dim + (in_dim if mean_pool else 0), out_dim)

    @torch.no_grad()
    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        # Constant columns (dead units) would divide by zero.
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = (x - self.feature_mean) / self.feature_std
        h = self.rnn(x, lengths)
        if self.mean_pool:
            steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
            mask = (steps < lengths.unsqueeze(1)).to(x.dtype).unsqueeze(-1)
            pooled = (x * mask).sum(1) / lengths.clamp_min(1).to(x.dtype).unsqueeze(-1)
            h = torch.cat([h, pooled], dim=-1)
        return self.proj(self.dropout(h))
