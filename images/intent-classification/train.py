"""intent-classification trainer: hashed bag-of-n-grams text classifier.

Token ids come from a stable hash (crc32), so there is no vocabulary to store beside
the weights and the same text always maps to the same ids.
"""
from __future__ import annotations

import re
import zlib

from steps.training.runtime import exit_trainer, run_trainer

DEFAULT_HYPERPARAMETERS = {"hash_buckets": 4096, "embedding_dim": 32, "hidden": 32, "max_tokens": 32}
_TOKEN_RE = re.compile(r"[a-z0-9']+")


def token_ids(text: str, buckets: int, max_tokens: int) -> list[int]:
    words = _TOKEN_RE.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    ids = [1 + zlib.crc32(g.encode("utf-8")) % buckets for g in grams][:max_tokens]
    return ids + [0] * (max_tokens - len(ids))


def _hp(hyperparameters, name):
    return int(hyperparameters.get(name, DEFAULT_HYPERPARAMETERS[name]))


class IntentClassifier:
    name = "intent-classification"
    schema_name = "intent"

    def featurize(self, frame, hyperparameters):
        import torch

        buckets, max_tokens = _hp(hyperparameters, "hash_buckets"), _hp(hyperparameters, "max_tokens")
        rows = [token_ids(str(text), buckets, max_tokens) for text in frame["text"]]
        return torch.tensor(rows, dtype=torch.long)

    def build_model(self, hyperparameters, n_classes):
        from torch import nn

        buckets = _hp(hyperparameters, "hash_buckets")
        dim, hidden = _hp(hyperparameters, "embedding_dim"), _hp(hyperparameters, "hidden")

        class MeanOfEmbeddings(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(buckets + 1, dim, padding_idx=0)
                self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

            def forward(self, ids):
                mask = (ids != 0).unsqueeze(-1).float()
                summed = (self.embedding(ids) * mask).sum(dim=1)
                return self.head(summed / mask.sum(dim=1).clamp(min=1.0))

        return MeanOfEmbeddings()


if __name__ == "__main__":
    exit_trainer(run_trainer(IntentClassifier()))
