"""``emotune data info`` and ``emotune embeddings info``: look at the inputs before training."""

from __future__ import annotations

import argparse
from typing import Any

from emotune.cli.base import Command, add_config_options, load_config
from emotune.tables import render


def data_info_text(info: dict[str, Any]) -> str:
    """``data.describe``'s numbers as the text ``emotune data info`` prints."""
    splits = info["splits"]
    counts = [{"label": n, **{s: sp["rows"] if n == "rows" else sp["per_label"][n]
                              for s, sp in splits.items()}}
              for n in ["rows", *info["labels"]]]
    lines = [f"dataset {info['dataset']}  ({', '.join(info['files'])})",
             f"sha256 {info['checksum']}",
             f"vocabulary (train) {info['vocabulary']} words, max_len {info['max_len']} tokens",
             # the labels padded by two spaces, then one 9-character column per split
             render(counts, ["label", *splits], headers={"label": ""}, align={"label": "<"},
                    sep="", min_width={"label": 2 + max(len(r["label"]) for r in counts),
                                       **dict.fromkeys(splits, 9)}),
             "words per text (p0 / p50 / p90 / p99 / p100):"]
    for s, sp in splits.items():
        p = sp["words_percentiles"]
        lines.append(f"  {s:<6} {p['p0']:g} / {p['p50']:g} / {p['p90']:g} / {p['p99']:g} / "
                     f"{p['p100']:g}")
    lines.append("duplicate texts within a split (with conflicting labels):")
    for s, sp in splits.items():
        lines.append(f"  {s:<6} {sp['duplicate_texts']} "
                     f"({sp['duplicates_with_conflicting_labels']})")
    shared = ", ".join(f"{k} {v}" for k, v in info["shared_texts"].items())
    lines.append(f"texts shared across splits: {shared}")
    if info.get("multi_label"):
        lines.append("multi-label: labels per text (texts with 1 / 2 / ... labels):")
        for s, sp in splits.items():
            share = sp["multi_label_rows"] / max(sp["rows"], 1)
            per = " / ".join(str(c) for c in sp["labels_per_text"].values())
            lines.append(f"  {s:<6} {per}  ({share:.1%} with two or more)")
        lines.append("most frequent label pairs (train):")
        lines += [f"  {p['pair']:<34} {p['rows']}" for p in splits["train"]["top_pairs"]]
    return "\n".join(lines)


class DataInfo(Command):
    name = "data info"
    help = "rows, labels, lengths, duplicates (multi-label: labels per text, frequent pairs)"
    description = ("Rows per split and label, text length percentiles, vocabulary, duplicates "
                   "within and across splits, checksum. --format csv or markdown gives one "
                   "row per split; json everything.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_config_options(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.data import describe, load_dataset, prepare

        config = load_config(args)
        dataset = load_dataset(config.data)
        info = describe(dataset, prepare(dataset, config.data))
        records = [{"split": s, **sp} for s, sp in info["splits"].items()]
        self.out.records(records, table=data_info_text(info), document=info)
        return 0


class EmbeddingsInfo(Command):
    name = "embeddings info"
    help = "coverage of the vocabulary"
    description = ("Build (or load from cache) the vocabulary-aligned GloVe matrix and report "
                   "its coverage.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_config_options(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.data import load_dataset, prepare
        from emotune.embeddings import load_embedding

        config = load_config(args)
        prepared = prepare(load_dataset(config.data), config.data)
        emb = load_embedding(config.embeddings, prepared.vocab, prepared.train_counts)
        s = emb.summary()
        missing = [w for w, f in zip(prepared.vocab[2:], emb.found[2:]) if not f]
        missing.sort(key=lambda w: -prepared.train_counts.get(w, 0))
        document = {**s, "most_frequent_missing": missing[:20]}
        text = "\n".join([
            f"source {s['source']} ({s['source_checksum']})",
            f"{s['rows']} x {s['dim']}: {s['type_coverage']:.2%} of vocabulary words found, "
            f"{s['token_coverage']:.2%} of training tokens",
            f"most frequent words without a vector: {', '.join(missing[:20]) or 'none'}"])
        self.out.records([document], table=text, document=document)
        return 0
