"""Tiny randomly initialised models with a locally trained tokenizer, for fast tests.

Nothing is read from disk: a WordPiece tokenizer is built with the ``tokenizers`` library
from the words of a few shopping sentences, and a 2-layer BERT-like encoder or Llama-like
causal LM is built from a config with seeded weights. Same seed, same weights.

Example:
    >>> model, tokenizer = tiny_model("encoder")
    >>> model.config.hidden_size
    32
"""

from __future__ import annotations

from typing import Literal

import torch
from transformers import (
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from ._errors import AgentError

SENTENCES = (
    "running shoes for trail and road",
    "a red dress for summer evenings",
    "organic coffee beans, dark roast",
    "noise cancelling headphones with long battery life",
    "vitamin supplements and a blood pressure monitor",
    "camping tent for four people, waterproof",
    "a novel about space travel and time",
    "kitchen knife set with a wooden block",
    "the user viewed sneakers, bought socks and searched for a rain jacket",
    "a friend shared a board game for family evenings",
)
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
HIDDEN = 32


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer: the words of :data:`SENTENCES` plus single characters.

    The word list is learned with ``tokenizers``' trainer; characters (``a``, ``##a``, ...) let
    any other text tokenize. Ids follow sorted order, so every build gives the same ids (the
    subword trainer orders equally frequent merges arbitrarily, hence words only).
    """
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    normalizer, pre_tokenizer = (
        normalizers.BertNormalizer(lowercase=True),
        pre_tokenizers.BertPreTokenizer(),
    )
    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.normalizer, words.pre_tokenizer = normalizer, pre_tokenizer
    words.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(show_progress=False))
    chars = string.ascii_lowercase + string.digits + string.punctuation
    learned = set(words.get_vocab()) | set(chars) | {f"##{c}" for c in chars}
    vocab = {t: i for i, t in enumerate([*SPECIALS, *sorted(learned - set(SPECIALS))])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
    )


def tiny_model(
    kind: Literal["encoder", "causal"] = "encoder", seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A 2-layer, 32-wide model of ``kind`` and its tokenizer; weights seeded by ``seed``."""
    tokenizer = tiny_tokenizer()
    shape = {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
        "pad_token_id": tokenizer.pad_token_id,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "encoder":
            model = BertModel(BertConfig(**shape), add_pooling_layer=False)
        elif kind == "causal":
            config = LlamaConfig(
                **shape,
                num_key_value_heads=1,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            model = LlamaForCausalLM(config)
        else:
            raise AgentError(f"kind must be 'encoder' or 'causal', got {kind!r}")
    return model.eval(), tokenizer
