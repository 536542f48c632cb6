"""`emotune ensemble`: average the class probabilities of several bundles of one configuration.

Typically the seeds of `final-train --seeds`: same vocabulary, labels and data, different
random starts. The members are wrapped in one Keras model (inputs shared, outputs averaged), so
the result is an ordinary bundle that `predict` reads. It is evaluated like `final-train`: its
val numbers for the record, the test split once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotune.errors import EmotuneError

if TYPE_CHECKING:
    from emotune.final import FinalEvaluation


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
    multi = [p for p, m in zip(paths, metas) if m.get("multi_label")]
    if multi:
        raise EmotuneError(f"{multi[0]} is a multi-label model; ensembles of multi-label "
                           f"bundles are not supported yet (their thresholds would need "
                           f"tuning anew): final-train with --seeds reports their spread")
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
                      name: str, models_dir: Path, reports_dir: Path,
                      overwrite: bool = False) -> FinalEvaluation:
    """Average the bundles at ``paths`` into one model, evaluate it and write it like final-train.

    Its val numbers are kept for the record and the test split is read once. The bundle goes
    to ``models_dir/name/`` and the report to ``reports_dir/name/final/``; both are written
    beside those folders and put in place together only when everything succeeded.

    Args:
        paths: Two or more bundles that passed ``check_members``.
        config: The members' configuration (saved with the ensemble's bundle).
        prepared: The data the members were trained on.
        embedding: The vocabulary-aligned word vectors (recorded in the metrics).
        name: The ensemble's bundle and report name.
        models_dir: The folder of bundles (``models``).
        reports_dir: The folder of reports (``reports``).
        overwrite: Replace an existing bundle of this name.

    Returns:
        The ensemble's ``FinalEvaluation`` (no history: it has no epochs of its own).

    Raises:
        EmotuneError: The bundle exists and ``overwrite`` is False, or a member cannot be
            loaded.
    """
    from emotune.bundle import load_bundle, save_bundle
    from emotune.final import FinalEvaluation, evaluate_split, refuse_existing, replacing
    from emotune.report_final import write_final_report
    from emotune.train import package_versions, predict_probs

    bundle_dir, report_dir = Path(models_dir) / name, Path(reports_dir) / name / "final"
    refuse_existing(bundle_dir, overwrite)
    model = average_model([load_bundle(p).model for p in paths])
    labels = list(prepared.label_names)

    def scores(split: Any) -> Any:
        probs = predict_probs(model, split)
        return evaluate_split(split.labels, probs, labels)

    v = scores(prepared.val)
    val = {"val_accuracy": v.accuracy, "val_macro_f1": v.macro_f1, "val_loss": v.cross_entropy,
           "params": int(model.count_params()), "members": [str(p) for p in paths]}
    m = scores(prepared.test)
    e = FinalEvaluation(f"{name} (mean of {len(paths)} bundles)", tuple(labels), m, val)
    with replacing(bundle_dir, report_dir) as (bundle_tmp, report_tmp):
        save_bundle(bundle_tmp, model, config, prepared,
                    {**val, **m.as_dict(), "embedding": embedding.summary()},
                    package_versions())
        write_final_report(report_tmp, e)
    return e


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
