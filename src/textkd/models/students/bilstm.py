"""BiLSTM student: embedding -> stacked bidirectional LSTM over packed sequences -> masked pooling -> head.

Padding never reaches the LSTM: sequences are packed with their true lengths (from `attention_mask`), so
a text's logits do not depend on how much padding its batch has. The common tutorial bug of classifying
from `lstm_out[:, -1]` (a padding position for every text shorter than the batch's longest) cannot
happen here: "last" pooling reads the LSTM's final states, which packing places at each text's true end.
Padding is expected on the right (the tokenizers' default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

try:  # transformers >= 5: init functions that respect already-loaded weights
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init

from textkd.config import StudentConfig
from textkd.errors import ConfigError
from textkd.models.classifier import HEADS, label_maps, masked_mean
from textkd.models.outputs import ClassifierOutput
from textkd.models.students.registry import (
    StudentPreset,
    register_student_type,
    student_dropout,
    student_pooling_and_head,
    student_tokenizer,
)

BILSTM_POOLINGS = ("mean", "max", "last")


class BiLSTMConfig(PretrainedConfig):
    """Configuration of a `BiLSTMClassifier`.

    Attributes:
        vocab_size: rows of the embedding table.
        embedding_dim: token embedding width.
        hidden_size: LSTM hidden size per direction (the pooled vector is 2 * hidden_size wide).
        num_layers: stacked bidirectional LSTM layers.
        dropout: between LSTM layers and before the classifier.
        pooling: "mean" (over real tokens), "max" (over real tokens) or "last" (final forward and backward
            states, i.e. the true last and first tokens).
        head: "linear" (Dropout, Linear 2H->C) or "mlp" (Dropout, Linear 2H->2H, GELU, Dropout, Linear 2H->C;
            the hidden layer of Tang et al. 2019's BiLSTM).
        pad_token_id: the padding id (its embedding row starts at zero).
        max_len: recommended tokens per text for this student, or None.
    """

    model_type = "textkd-bilstm"

    def __init__(
        self,
        vocab_size: int = 8000,
        embedding_dim: int = 300,
        hidden_size: int = 300,
        num_layers: int = 2,
        dropout: float = 0.2,
        pooling: str = "mean",
        head: str = "linear",
        pad_token_id: int | None = 0,
        max_len: int | None = None,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        # A classic __init__ so the same config.json loads across transformers versions.
        if pooling not in BILSTM_POOLINGS:
            raise ConfigError(f"unknown BiLSTM pooling {pooling!r}", hint=f"use one of {', '.join(BILSTM_POOLINGS)}")
        if head not in HEADS:
            raise ConfigError(f"unknown BiLSTM head {head!r}", hint=f"use one of {', '.join(HEADS)}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.pooling = pooling
        self.head = head
        self.max_len = max_len
        self.initializer_range = initializer_range
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class BiLSTMClassifier(PreTrainedModel):
    """Embedding, bidirectional LSTM, masked pooling, then a linear or MLP head.

    Example:
        >>> config = BiLSTMConfig(vocab_size=50, embedding_dim=8, hidden_size=8, num_layers=1, num_labels=3)
        >>> out = BiLSTMClassifier(config)(torch.tensor([[2, 5, 3, 0]]), torch.tensor([[1, 1, 1, 0]]))
        >>> out.logits.shape, out.pooled.shape
        (torch.Size([1, 3]), torch.Size([1, 16]))
    """

    config_class = BiLSTMConfig
    base_model_prefix = "bilstm"
    main_input_name = "input_ids"

    @property
    def pooled_size(self) -> int:
        """Width of `ClassifierOutput.pooled`: both directions of the last LSTM layer."""
        return 2 * self.config.hidden_size

    def __init__(self, config: BiLSTMConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=True,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        # The mlp head's hidden layer; a linear head has none (and saved linear-head students load unchanged).
        self.head_hidden = nn.Linear(2 * config.hidden_size, 2 * config.hidden_size) if config.head == "mlp" else None
        self.classifier = nn.Linear(2 * config.hidden_size, config.num_labels)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's own defaults (N(0, 1) embeddings, uniform LSTM weights), which LSTMs train well from;
        # the transformers guard skips weights that were loaded from a checkpoint.
        if isinstance(module, nn.Embedding) and not getattr(module.weight, "_is_hf_initialized", False):
            init.normal_(module.weight, mean=0.0, std=1.0)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LSTM):
            bound = module.hidden_size**-0.5
            for param in module.parameters():
                init.uniform_(param, -bound, bound)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings = value

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
        """Classify a batch; same signature as `TextkdClassifier.forward`.

        `token_type_ids` and `output_attentions` are accepted for a uniform call and ignored (an LSTM has
        no segments or attention maps). `hidden_states` is (embeddings (B, L, E), lstm_out (B, L, 2H)).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()  # (B,); an empty text still needs one step
        embedded = self.embeddings(input_ids)  # (B, L, E)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_out, (final_hidden, _) = self.lstm(packed)
        lstm_out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=input_ids.size(1))  # (B, L, 2H)
        pooled = self.pool(lstm_out, attention_mask, final_hidden)  # (B, 2H)
        logits = self.classify(pooled)  # (B, C)
        loss = nn.functional.cross_entropy(logits, labels.view(-1)) if labels is not None else None
        output = ClassifierOutput(
            loss=loss,
            logits=logits,
            pooled=pooled,
            hidden_states=(embedded, lstm_out) if output_hidden_states else None,
        )
        return output if return_dict is not False else output.to_tuple()

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, 2H) sentence vectors -> (B, C) logits through the linear or mlp head."""
        features = self.dropout(pooled)
        if self.head_hidden is not None:
            features = self.dropout(nn.functional.gelu(self.head_hidden(features)))  # (B, 2H)
        return self.classifier(features)

    def pool(self, lstm_out: torch.Tensor, attention_mask: torch.Tensor, final_hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, 2H) LSTM outputs -> (B, 2H) sentence vector, never reading padding positions."""
        if self.config.pooling == "last":
            # final_hidden: (layers * 2, B, H); the top layer's forward state saw the whole text up to its
            # true last token, its backward state the whole text down to the first.
            return torch.cat([final_hidden[-2], final_hidden[-1]], dim=-1)
        if self.config.pooling == "max":
            padding = (attention_mask == 0).unsqueeze(-1)  # (B, L, 1)
            return lstm_out.masked_fill(padding, torch.finfo(lstm_out.dtype).min).max(dim=1).values
        return masked_mean(lstm_out, attention_mask)


def teacher_embedding_matrix(teacher_model: nn.Module, dim: int) -> torch.Tensor:
    """The teacher's word embeddings (V, H_teacher) as a (V, dim) matrix.

    Equal widths copy the table. Otherwise the rows are projected onto their top principal directions
    (a fixed SVD of the centred table, signs fixed so the largest loading is positive); when `dim` is
    wider than the teacher, the extra columns are N(0, std of the projection) from a fixed seed.

    Example:
        >>> emb = nn.Embedding(10, 6)
        >>> class Teacher(nn.Module):
        ...     def get_input_embeddings(self): return emb
        >>> teacher_embedding_matrix(Teacher(), 4).shape
        torch.Size([10, 4])
    """
    weight = teacher_model.get_input_embeddings().weight.detach().float().cpu()  # (V, H)
    if weight.size(1) == dim:
        return weight.clone()
    centred = weight - weight.mean(dim=0, keepdim=True)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)  # (H, H), rows = principal directions
    signs = torch.sign(directions.gather(1, directions.abs().argmax(dim=1, keepdim=True)))  # (H, 1)
    keep = min(dim, weight.size(1))
    projected = centred @ (directions[:keep] * signs[:keep]).T  # (V, keep)
    if keep == dim:
        return projected
    generator = torch.Generator().manual_seed(0)
    extra = torch.randn(weight.size(0), dim - keep, generator=generator) * projected.std()  # (V, dim - keep)
    return torch.cat([projected, extra], dim=1)


@register_student_type("bilstm", label="BiLSTM", poolings=BILSTM_POOLINGS)
def build_bilstm_student(
    cfg: StudentConfig,
    preset: StudentPreset,
    teacher_model: nn.Module | None,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    label_names: Sequence[str],
    train_texts: Sequence[str],
    language: str = "en",
) -> tuple[BiLSTMClassifier, PreTrainedTokenizerBase]:
    """A BiLSTM student of `preset`'s shape (`cfg.num_layers` / `cfg.hidden_size` / `cfg.dropout` override it).

    `cfg.embedding_init == "teacher"` starts the embeddings from the teacher's word embeddings (projected
    when widths differ, then scaled to unit standard deviation like the random init), which needs the
    teacher's tokenizer so that rows mean the same tokens.
    """
    if cfg.init != "random":
        raise ConfigError(f"a BiLSTM student supports student.init 'random' only, got {cfg.init!r}")
    if cfg.encoder_dropout is not None:
        raise ConfigError(
            "student.encoder_dropout applies to transformer students; a BiLSTM's dropout is student.dropout",
            hint="set student.dropout instead",
        )
    tokenizer = student_tokenizer(cfg, preset, teacher_tokenizer, train_texts, language)
    teacher_rows = None
    if cfg.embedding_init == "teacher":
        if cfg.tokenizer != "teacher" or teacher_model is None:
            raise ConfigError(
                "student.embedding_init 'teacher' needs the teacher's tokenizer and model",
                hint="set student.tokenizer to teacher, or student.embedding_init to random",
            )
        teacher_rows = teacher_embedding_matrix(teacher_model, preset.embedding_dim)  # (V, E)
        # At the scale of the BiLSTM's own N(0, 1) init: a BERT table's entries have a std near 0.05, and inputs
        # ~18x smaller than the LSTM is tuned for trained worse than random rows (benchmarks/README.md).
        teacher_rows = teacher_rows / teacher_rows.std()
    pooling, head = student_pooling_and_head(cfg, "bilstm", preset.pooling, preset.head)
    config = BiLSTMConfig(
        vocab_size=teacher_rows.size(0) if teacher_rows is not None else len(tokenizer),
        embedding_dim=preset.embedding_dim,
        hidden_size=cfg.hidden_size or preset.hidden_size,
        num_layers=cfg.num_layers or preset.num_layers,
        dropout=student_dropout(cfg, preset.dropout),
        pooling=pooling,
        head=head,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        max_len=preset.max_len,
        **label_maps(len(label_names), list(label_names)),
    )
    model = BiLSTMClassifier(config)
    if teacher_rows is not None:
        with torch.no_grad():
            model.embeddings.weight.copy_(teacher_rows)
    return model, tokenizer
