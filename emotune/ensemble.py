"""`emotune ensemble`: average the class probabilities of several bundles of one configuration.

Typically the seeds of `final-train --seeds`: same vocabulary, labels and data, different
random starts. The members are wrapped in one Keras model (inputs shared, outputs averaged), so
the result is an ordinary bundle that `predict` reads. It is evaluated like `final-train`: its
val numbers for the record, the test split once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emotune.errors import EmotuneError


def check_members(paths: list[Path]) -> dict[str, Any]:
    """The members' shared bundle.json; raises if they were not trained on the same data."""
    if len(paths) < 2:
        raise EmotuneError("an ensemble needs at least two bundles, e.g. "
                           "models/best-gru/seed-1 models/best-gru/seed-2")
    metas = []
    for p in paths:
        try:
            metas.append(json.loads((Path(p) / "bundle.json").read_text()))
        except (OSError, ValueError):
            raise EmotuneError(f"{p} is not a readable model bundle (bundle.json); give "
                               f"folders written by `emotune final-train`") from None
    for p, m in zip(paths[1:], metas[1:]):
        for key in ("data_checksum", "max_len", "tokenizer"):
            if m.get(key) != metas[0].get(key):
                raise EmotuneError(f"{p} differs from {paths[0]} in {key}; ensemble only "
                                   f"bundles trained on the same data and vocabulary")
    vocab = [(Path(p) / "vocab.txt").read_bytes() for p in paths]
    if any(v != vocab[0] for v in vocab[1:]):
        raise EmotuneError("the bundles' vocabularies differ; ensemble only bundles trained "
                           "on the same data")
    return metas[0]


def evaluate_ensemble(paths: list[Path], config: Any, prepared: Any, embedding: Any, *,
                      name: str, bundle_dir: Path, report_dir: Path) -> tuple[Any, dict]:
    """Average the bundles at ``paths``; val numbers for the record, test once; write the
    ensemble's bundle and report as final-train does."""
    from emotune.bundle import load_bundle, save_bundle
    from emotune.final import evaluate_split, write_final_report
    from emotune.train import package_versions, predict_probs

    model = average_model([load_bundle(p).model for p in paths])
    labels = list(prepared.label_names)

    def scores(split: Any) -> Any:
        probs = predict_probs(model, split)
        return evaluate_split(split.labels, probs, labels)

    v = scores(prepared.val)
    val = {"val_accuracy": v.accuracy, "val_macro_f1": v.macro_f1, "val_loss": v.cross_entropy,
           "params": int(model.count_params()), "members": [str(p) for p in paths]}
    m = scores(prepared.test)
    save_bundle(bundle_dir, model, config, prepared,
                {**val, **m.as_dict(), "embedding": embedding.summary()}, package_versions())
    write_final_report(report_dir, f"{name} (mean of {len(paths)} bundles)", m, labels, None,
                       val)
    return m, val


def average_model(models: list[Any]) -> Any:
    """One Keras model: the members side by side on the same token ids, probabilities averaged."""
    import keras

    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    outputs = []
    for k, m in enumerate(models):
        m.name = f"member_{k + 1}"  # the members share a name, which Keras refuses
        outputs.append(m(ids))
    mean = keras.layers.Average(name="mean_probability")(outputs)
    return keras.Model(ids, mean, name="ensemble")
