"""The frozen part of the text encoder, computed once per token sequence.

With `ModelConfig.text_frozen_layers = k`, the embeddings and the lower k layers do not
train, so their output for a sentence never changes: an epoch need only run the layers
above. PrefixMemo keeps those outputs per token sequence (trimmed to the real tokens:
padding does not change them, as padded keys are masked), fills itself on first sight,
and persists in $MMIM_CACHE under a fingerprint of the frozen weights, so a second run,
a resumed run or another seed on the same text starts warm. A file that does not load
(truncated, corrupt) is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from .cache import cache_root
from .files import atomic_write

log = logging.getLogger("mmim.text_prefix")


def fingerprint(encoder) -> str:
    """sha256 of everything the frozen outputs depend on: the encoder's class, k and the
    frozen weights themselves."""
    h = hashlib.sha256(f"{type(encoder.bert).__name__}:{encoder.frozen_layers}".encode())
    frozen = [encoder.bert.embeddings] + list(encoder.bert.encoder.layer[: encoder.frozen_layers])
    if hasattr(encoder.bert.encoder, "relative_attention_bias"):  # MPNet's position bias
        frozen.append(encoder.bert.encoder.relative_attention_bias)
    for module in frozen:
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class PrefixMemo:
    def __init__(self, encoder, directory: Path | None = None):
        self.path = Path(directory or cache_root() / "text-prefix") / f"{fingerprint(encoder)[:20]}.safetensors"
        self.states: dict[bytes, torch.Tensor] = {}
        self.new = 0
        self.hits = self.misses = 0
        self._load()

    def lookup(self, encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, H): the frozen part's output for the batch, padded with zeros."""
        ids, mask = input_ids.cpu(), attention_mask.cpu()
        lengths = mask.sum(1)
        if not torch.equal(mask, (torch.arange(mask.shape[1]) < lengths.unsqueeze(1)).to(mask.dtype)):
            return encoder.lower(input_ids, attention_mask)  # not right-padded: no key to trust
        keys = [ids[i, : int(n)].to(torch.int32).numpy().tobytes() for i, n in enumerate(lengths)]
        missing = [i for i, k in enumerate(keys) if k not in self.states]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            rows = torch.tensor(missing)
            width = int(lengths[rows].max())
            fresh = encoder.lower(input_ids[rows, :width], attention_mask[rows, :width])
            for j, i in enumerate(missing):
                self.states[keys[i]] = fresh[j, : int(lengths[i])].cpu().clone()
            self.new += len(missing)
        dim = next(iter(self.states.values())).shape[-1]
        out = torch.zeros(input_ids.shape[0], input_ids.shape[1], dim)
        for i, k in enumerate(keys):
            out[i, : int(lengths[i])] = self.states[k]
        return out.to(input_ids.device)

    def save(self) -> None:
        """Write every sequence seen so far, atomically; nothing to do if none is new."""
        if not self.new:
            return
        from safetensors.torch import save_file

        keys = list(self.states)
        tensors = {
            "tokens": torch.cat([torch.frombuffer(bytearray(k), dtype=torch.int32) for k in keys]),
            "lengths": torch.tensor([len(k) // 4 for k in keys], dtype=torch.int64),
            "states": torch.cat([self.states[k] for k in keys]),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: save_file(tensors, str(tmp)))
        log.info("text prefix memo: %d sequences in %s", len(keys), self.path)
        self.new = 0

    def _load(self) -> None:
        if not self.path.is_file():
            return
        from safetensors.torch import load_file

        try:
            z = load_file(str(self.path))
            tokens, lengths, states = z["tokens"], z["lengths"], z["states"]
            if int(lengths.sum()) != len(tokens) or len(tokens) != len(states):
                raise ValueError("its arrays disagree in length")
        except Exception as error:  # a truncated or foreign file: rebuild rather than trust it
            log.warning("ignoring the text prefix memo %s (%s); it will be rebuilt", self.path, error)
            return
        start = 0
        for n in lengths.tolist():
            self.states[tokens[start : start + n].numpy().tobytes()] = states[start : start + n]
            start += n
