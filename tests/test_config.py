from __future__ import annotations

import dataclasses

import pytest
import yaml

from emotune.config import DEFAULTS_FILE, SECTIONS, Config, build_config, parse_sets, resolve_key
from emotune.errors import ConfigError
from emotune.space import PARAMS


def test_defaults_file_matches_dataclass_defaults():
    # experiments/defaults.yaml is the documented source of defaults: it must name every
    # setting, and agree with the values the code falls back to.
    loaded = build_config()
    # Sweep values are the one setting whose defaults live only in the YAML file.
    assert loaded == dataclasses.replace(
        Config(), search=dataclasses.replace(Config().search, sweeps=loaded.search.sweeps))
    # Every tunable parameter has its sweep values there, and nothing else does.
    assert set(loaded.search.sweeps) == set(PARAMS)
    text = yaml.safe_load(DEFAULTS_FILE.read_text())
    assert set(text) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        assert set(text[section]) == {f.name for f in dataclasses.fields(cls)}, section


def test_layers_override_in_order(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("train:\n  lr: 0.01\n  batch_size: 64\nmodel:\n  type: lstm\n")
    c = build_config(f, parse_sets(["lr=0.005"]))
    assert c.train.lr == 0.005  # --set beats the file
    assert c.train.batch_size == 64  # the file beats the defaults
    assert c.model.type == "lstm"
    assert c.model.units == Config().model.units  # untouched keys keep their defaults


def test_keys_bare_dotted_and_aliases():
    assert resolve_key("lr") == ("train", "lr")
    assert resolve_key("model.units") == ("model", "units")
    assert resolve_key("batch") == ("train", "batch_size")
    assert resolve_key("embedding_mode") == ("model", "embedding")
    c = build_config(overrides=parse_sets(["kernel_sizes=[2, 3]", "clipnorm=1", "mask=false"]))
    assert c.model.kernel_sizes == (2, 3)
    assert c.train.clipnorm == 1.0
    assert c.model.mask is False


@pytest.mark.parametrize("pair, fragment", [
    ("lr=0", "`lr` must be > 0"),
    ("lr=-0.1", "`lr` must be > 0"),
    ("dropout=1", "`dropout` must be in [0, 1)"),
    ("dropout=-0.1", "`dropout` must be in [0, 1)"),
    ("units=0", "`units` must be an integer >= 1"),
    ("units=abc", "`units` must be an integer"),
    ("batch_size=0", "`batch_size` must be an integer >= 1"),
    ("optimizer=adamx", "unknown optimizer 'adamx'"),
    ("model.type=transformer", "unknown model 'transformer'"),
    ("embedding=frozn", "Did you mean 'frozen'"),
    ("unitz=3", "Did you mean 'units'"),
    ("bidirectional=maybe", "must be true or false"),
    ("lr", "needs the form key=value"),
])
def test_bad_settings_say_what_and_how(pair, fragment):
    with pytest.raises(ConfigError) as e:
        build_config(overrides=parse_sets([pair]))
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  lr: 0.1\n   batch_size: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+"):
        build_config(f)
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(tmp_path / "missing.yaml")


def test_scientific_notation_without_a_dot_is_a_number():
    c = build_config(overrides=parse_sets(["lr=1e-4", "units=1e2"]))
    assert c.train.lr == 1e-4 and c.model.units == 100


def test_the_defaults_file_names_no_key_twice():
    import yaml

    from emotune.config import DEFAULTS_FILE

    class Strict(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
            assert len(keys) == len(set(keys)), f"a key twice in {DEFAULTS_FILE}: {keys}"
            return super().construct_mapping(node, deep=deep)

    yaml.load(DEFAULTS_FILE.read_text(), Loader=Strict)


def test_objectives_agree_between_config_and_scores():
    from emotune.config import MONITORS, OBJECTIVES
    from emotune.scores import OBJECTIVES as SCORED

    assert set(OBJECTIVES) == set(SCORED)
    assert set(MONITORS) == {"val_loss", *(o for o in SCORED if SCORED[o].maximize)}
