"""The BERT-style classifier used for teachers and transformer students: encoder + pooling + head.

`TextkdClassifier` is a transformers `PreTrainedModel` registered with the Auto classes (see
`textkd.models.__init__`), so a saved directory loads with `AutoModelForSequenceClassification` and
`pipeline("text-classification", model=dir)` after `import textkd`.

Attention maps: transformers 5 runs BERT with SDPA by default, which cannot return attention weights
(it logs a warning and returns None). `forward(output_attentions=True)` therefore switches the encoder
to the eager implementation for that call only, so inference keeps the fast SDPA path and attention
distillation still gets its (B, heads, L, L) maps. `TextkdClassifier(config, attn_implementation="eager")`
or `model.set_attn_implementation("eager")` make eager permanent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertModel, PretrainedConfig, PreTrainedModel

try:  # transformers >= 5: init functions that respect already-loaded weights
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init

from textkd.errors import ConfigError
from textkd.models.outputs import ClassifierOutput

POOLINGS = ("mean", "cls")
HEADS = ("mlp", "linear")


class TextkdClassifierConfig(PretrainedConfig):
    """Configuration of a `TextkdClassifier`.

    Attributes:
        encoder: the BERT encoder's `BertConfig` (a dict in `config.json`).
        pooling: "mean" (masked mean over the last hidden state) or "cls" (the [CLS] vector).
        head: "mlp" (Dropout, Linear h->h, GELU, Dropout, Linear h->C) or "linear" (Dropout, Linear h->C).
        head_dropout: dropout probability inside the head.
    """

    model_type = "textkd-classifier"
    sub_configs = {"encoder": BertConfig}

    def __init__(
        self,
        encoder: dict | PretrainedConfig | None = None,
        pooling: str = "mean",
        head: str = "mlp",
        head_dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        # A classic __init__ (not the dataclass-style config of recent transformers) so that the same
        # config.json loads across transformers versions; the encoder is always a BertConfig here.
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}", hint=f"use one of {', '.join(POOLINGS)}")
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}", hint=f"use one of {', '.join(HEADS)}")
        if isinstance(encoder, dict):
            encoder = BertConfig(**encoder)
        self.encoder = encoder if encoder is not None else BertConfig()
        self.pooling = pooling
        self.head = head
        self.head_dropout = head_dropout
        super().__init__(**kwargs)


def label_maps(num_labels: int, id2label: dict[int, str] | list[str] | None) -> dict[str, Any]:
    """`num_labels`, `id2label` and `label2id` config kwargs; names default to LABEL_0, LABEL_1, ...

    Example:
        >>> label_maps(2, ["neg", "pos"])["label2id"]
        {'neg': 0, 'pos': 1}
    """
    if id2label is None:
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    elif not isinstance(id2label, dict):
        id2label = dict(enumerate(id2label))
    id2label = {int(i): str(name) for i, name in id2label.items()}
    if len(id2label) != num_labels:
        raise ConfigError(f"{num_labels} labels but {len(id2label)} label names")
    return {"num_labels": num_labels, "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}}


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden` (B, L, H) over positions where `mask` (B, L) is 1; padding never counts.

    Example:
        >>> masked_mean(torch.ones(1, 3, 2), torch.tensor([[1, 1, 0]])).shape
        torch.Size([1, 2])
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, H)


def build_head(kind: str, hidden_size: int, num_labels: int, dropout: float) -> nn.Sequential:
    """The classification head: "mlp" or "linear" (see `TextkdClassifierConfig`)."""
    if kind == "mlp":
        return nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_labels),
        )
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, num_labels))


@contextlib.contextmanager
def eager_attention(config: PretrainedConfig) -> Iterator[None]:
    """Run the block with eager attention (the only implementation that returns attention maps)."""
    previous = config._attn_implementation
    if previous == "eager":
        yield
        return
    config._attn_implementation_internal = "eager"
    try:
        yield
    finally:
        config._attn_implementation_internal = previous


class _PretrainedEncoder(BertModel):
    """BertModel for reading checkpoints: their pooler and pre-training heads are dropped without a report."""

    _keys_to_ignore_on_load_unexpected = [r"(^|\.)pooler\.", r"(^|\.)cls\.", r"^classifier\."]


class TextkdClassifier(PreTrainedModel):
    """BERT encoder (no pooler) + masked-mean or [CLS] pooling + MLP or linear head.

    Example:
        >>> model = TextkdClassifier.from_scratch({"hidden_size": 32, "num_hidden_layers": 1,
        ...     "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100}, num_labels=3)
        >>> model(torch.tensor([[2, 7, 3]])).logits.shape
        torch.Size([1, 3])
    """

    config_class = TextkdClassifierConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["BertEmbeddings", "BertLayer"]

    def __init__(self, config: TextkdClassifierConfig) -> None:
        super().__init__(config)
        self.encoder = BertModel(config.encoder, add_pooling_layer=False)
        hidden = config.encoder.hidden_size
        self.head = build_head(config.head, hidden, config.num_labels, config.head_dropout)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.encoder.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)

    @property
    def num_layers(self) -> int:
        """Transformer layers of the encoder."""
        return self.config.encoder.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        """Width of every hidden state (and of the pooled vector)."""
        return self.config.encoder.hidden_size

    @property
    def pooled_size(self) -> int:
        """Width of `ClassifierOutput.pooled`."""
        return self.config.encoder.hidden_size

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> ClassifierOutput | tuple:
        """Classify a batch.

        Args:
            input_ids: (B, L) token ids.
            attention_mask: (B, L) 1 for real tokens, 0 for padding; all ones when None.
            token_type_ids: (B, L) segment ids (zeros for single texts).
            labels: (B,) gold label ids; when given, `loss` is their cross-entropy.
            output_hidden_states: return (B, L, H) per layer, embeddings first.
            output_attentions: return (B, heads, L, L) per layer (switches to eager attention for this call).
            return_dict: False returns a tuple (as transformers models do).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        context = eager_attention(self.config.encoder) if output_attentions else contextlib.nullcontext()
        with context:
            encoded = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                output_hidden_states=bool(output_hidden_states),
                output_attentions=bool(output_attentions),
                return_dict=True,
            )
        pooled = self.pool(encoded.last_hidden_state, attention_mask)  # (B, H)
        logits = self.head(pooled)  # (B, C)
        loss = nn.functional.cross_entropy(logits, labels.view(-1)) if labels is not None else None
        output = ClassifierOutput(
            loss=loss,
            logits=logits,
            pooled=pooled,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict is not False else output.to_tuple()

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, H) last hidden state -> (B, H) sentence vector."""
        if self.config.pooling == "cls":
            return hidden[:, 0]
        return masked_mean(hidden, attention_mask)

    @classmethod
    def from_scratch(
        cls,
        bert_config_kwargs: dict[str, Any] | BertConfig,
        num_labels: int,
        id2label: dict[int, str] | list[str] | None = None,
        pooling: str = "mean",
        head: str = "mlp",
        dropout: float = 0.1,
        attn_implementation: str | None = None,
    ) -> TextkdClassifier:
        """A randomly initialised classifier whose encoder is `BertConfig(**bert_config_kwargs)`.

        Example:
            >>> model = TextkdClassifier.from_scratch({"hidden_size": 32, "num_hidden_layers": 2,
            ...     "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 200}, 4, head="linear")
            >>> model.config.encoder.num_hidden_layers
            2
        """
        encoder = bert_config_kwargs
        if not isinstance(encoder, BertConfig):
            encoder = BertConfig(**bert_config_kwargs)
        config = TextkdClassifierConfig(
            encoder=encoder,
            pooling=pooling,
            head=head,
            head_dropout=dropout,
            **label_maps(num_labels, id2label),
        )
        if attn_implementation is not None:
            config._attn_implementation = attn_implementation
        return cls(config)

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str,
        num_labels: int,
        id2label: dict[int, str] | list[str] | None = None,
        pooling: str = "mean",
        head: str = "mlp",
        dropout: float = 0.1,
        attn_implementation: str | None = None,
    ) -> TextkdClassifier:
        """A classifier whose encoder carries the pretrained BERT weights at `name_or_path`; the head is new.

        Loading errors propagate (see `textkd.models.backbones.load_encoder` for the user-facing wrapper).

        Example:
            >>> from textkd.models.backbones import resolve_backbone
            >>> model = TextkdClassifier.from_backbone(resolve_backbone("minilm-l6"), 77)
            >>> model.config.encoder.hidden_size
            384
        """
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        encoder = _PretrainedEncoder.from_pretrained(name_or_path, add_pooling_layer=False, **kwargs)
        model = cls.from_scratch(encoder.config, num_labels, id2label, pooling, head, dropout, attn_implementation)
        model.encoder.load_state_dict(encoder.state_dict())
        return model
