from __future__ import annotations

import numpy as np
import pytest

from emotune.config import ModelConfig, TrainConfig
from emotune.models import ENCODERS, build_model

EMB = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
EMB[0] = 0
X = np.array([[2, 3, 4, 0, 0], [5, 6, 7, 8, 9]], dtype=np.int32)


def _trainable_embeddings(model):
    return {layer.name: layer.trainable for layer in model.layers
            if layer.__class__.__name__ == "Embedding"}


def test_registry_has_the_three_encoders():
    assert set(ENCODERS) == {"gru", "lstm", "cnn"}


@pytest.mark.parametrize("kind", ["gru", "lstm", "cnn"])
@pytest.mark.parametrize("mode", ["frozen", "fine-tuned", "multichannel"])
def test_every_encoder_and_embedding_mode_builds(kind, mode):
    model = build_model(ModelConfig(type=kind, units=4, embedding=mode, kernel_sizes=(2, 3)),
                        TrainConfig(), EMB, num_classes=3)
    probs = model.predict(X, verbose=0)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    expected = {"frozen": {"embedding": False}, "fine-tuned": {"embedding": True},
                "multichannel": {"embedding_static": False, "embedding_tuned": True}}[mode]
    assert _trainable_embeddings(model) == expected
    first = [layer for layer in model.layers if layer.name.startswith("embedding")][0]
    np.testing.assert_array_equal(first.get_weights()[0], EMB)  # GloVe rows, not random


def test_matrix_is_not_written_into_the_model_config():
    big = np.ones((5000, 50), dtype=np.float32)
    model = build_model(ModelConfig(units=4), TrainConfig(), big, num_classes=3)
    assert len(model.to_json()) < 20_000


def test_masking_makes_rnn_outputs_independent_of_padding():
    model = build_model(ModelConfig(type="gru", units=4), TrainConfig(), EMB, num_classes=3)
    short = model.predict(X[:1, :3], verbose=0)
    long = model.predict(np.pad(X[:1, :3], ((0, 0), (0, 10))), verbose=0)
    np.testing.assert_allclose(short, long, rtol=1e-5)
    unmasked = build_model(ModelConfig(type="gru", units=4, mask=False), TrainConfig(), EMB, 3)
    a = unmasked.predict(X[:1, :3], verbose=0)
    b = unmasked.predict(np.pad(X[:1, :3], ((0, 0), (0, 10))), verbose=0)
    assert not np.allclose(a, b)  # the test above can tell masking from no masking


def test_bidirectional_doubles_the_rnn_and_cnn_uses_one_conv_per_kernel():
    uni = build_model(ModelConfig(units=4), TrainConfig(), EMB, 3)
    bi = build_model(ModelConfig(units=4, bidirectional=True), TrainConfig(), EMB, 3)
    assert bi.count_params() > uni.count_params()
    assert any(layer.__class__.__name__ == "Bidirectional" for layer in bi.layers)
    cnn = build_model(ModelConfig(type="cnn", units=4, kernel_sizes=(2, 3, 5)), TrainConfig(),
                      EMB, 3)
    assert [layer.kernel_size for layer in cnn.layers
            if layer.__class__.__name__ == "Conv1D"] == [(2,), (3,), (5,)]
    cnn.predict(np.array([[2]], dtype=np.int32), verbose=0)  # a 1-token text still works


@pytest.mark.parametrize("name, cls", [("adam", "Adam"), ("rmsprop", "RMSprop"), ("sgd", "SGD")])
def test_optimizers_learning_rate_and_clipping(name, cls):
    model = build_model(ModelConfig(units=4), TrainConfig(optimizer=name, lr=0.02, clipnorm=1.5),
                        EMB, 3)
    assert model.optimizer.__class__.__name__ == cls
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    assert model.optimizer.clipnorm == 1.5


@pytest.mark.parametrize("pooling", ["last", "max", "mean", "attention"])
@pytest.mark.parametrize("layers", [1, 2])
def test_rnn_pooling_and_stacking_ignore_padding(pooling, layers):
    cfg = ModelConfig(type="lstm", units=4, layers=layers, pooling=pooling, bidirectional=True)
    model = build_model(cfg, TrainConfig(), EMB, 3)
    assert sum(type(la).__name__ == "Bidirectional" for la in model.layers) == layers
    short = model.predict(X[:1, :3], verbose=0)
    long = model.predict(np.pad(X[:1, :3], ((0, 0), (0, 10))), verbose=0)
    np.testing.assert_allclose(short, long, rtol=1e-5)  # padding changes nothing


def test_masked_pooling_by_hand():
    from emotune.layers import MaskedPooling

    x = np.array([[[1.0, -5.0], [3.0, -1.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(MaskedPooling("max")(x, mask=mask), [[3.0, -1.0]])
    np.testing.assert_allclose(MaskedPooling("mean")(x, mask=mask), [[2.0, -3.0]])
    att = np.asarray(MaskedPooling("attention")(x, mask=mask))
    assert (att >= [[1.0, -5.0]]).all() and (att <= [[3.0, -1.0]]).all()  # a convex mix


def test_schedules_warm_up_and_decay():
    from emotune.models import learning_rate

    assert learning_rate(TrainConfig(lr=0.01), 100) == 0.01
    cos = learning_rate(TrainConfig(lr=0.01, epochs=2, schedule="cosine", warmup_epochs=0.5),
                        100)
    lin = learning_rate(TrainConfig(lr=0.01, epochs=2, schedule="linear"), 100)
    const = learning_rate(TrainConfig(lr=0.01, epochs=2, warmup_epochs=1), 100)
    values = {name: [float(s(step)) for step in (0, 25, 50, 125, 199)]
              for name, s in (("cos", cos), ("lin", lin), ("const", const))}
    assert values["cos"][0] == 0 and values["cos"][1] == pytest.approx(0.005)
    assert values["cos"][2] == pytest.approx(0.01) and values["cos"][4] < 0.0001
    assert values["lin"][0] == pytest.approx(0.01) and values["lin"][2] == pytest.approx(0.0075)
    assert values["const"][1] == pytest.approx(0.0025) and values["const"][3] == \
        pytest.approx(0.01)


def test_label_smoothing_loss_and_adamw():
    import keras

    from emotune.models import make_loss

    loss = make_loss(TrainConfig(label_smoothing=0.3), 3)
    y_true = np.array([0, 2])
    y_pred = np.array([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32)
    onehot = np.eye(3)[y_true] * 0.7 + 0.1  # smoothed targets: 0.3 spread over 3 classes
    expected = -(onehot * np.log(y_pred)).sum(axis=1).mean()
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    # Focal: each text's cross-entropy weighted by (1 - p_true)^gamma.
    focal = make_loss(TrainConfig(focal_gamma=2.0), 3)
    p_true = y_pred[[0, 1], y_true]
    expected = (-((1 - p_true) ** 2) * np.log(p_true)).mean()
    assert float(focal(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    model = build_model(ModelConfig(units=4), TrainConfig(optimizer="adamw", weight_decay=0.01,
                                                          label_smoothing=0.1), EMB, 3)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == pytest.approx(0.01)
    model.fit(X, np.array([0, 1]), epochs=1, verbose=0)


def test_a_model_with_a_warmup_schedule_loads_in_a_new_process(tmp_path):
    """WarmupThen must be registered at import, as load_bundle does it: a new process that has
    built no model must load a model saved with ``warmup_epochs > 0``."""
    import subprocess
    import sys

    tc = TrainConfig(warmup_epochs=1, schedule="cosine", epochs=3)
    model = build_model(ModelConfig(units=4), tc, EMB, num_classes=3, steps_per_epoch=5)
    model.fit(X, np.array([0, 1]), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    code = ("import keras, emotune.layers, sys; m = keras.models.load_model(sys.argv[1]); "
            "print(m.optimizer.get_config()['learning_rate']['class_name'])")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "WarmupThen"
