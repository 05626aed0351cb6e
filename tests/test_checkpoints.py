"""Every shipped checkpoint loads, verifies, and reaches its recorded test accuracy within 0.5 points."""
import pytest

from tinyml_lib.checkpoints import CHECKPOINTS, load_checkpoint
from tinyml_lib.data import fashion_mnist_loader
from tinyml_lib.data.manifest import load_manifest
from tinyml_lib.training import evaluate

SHIPPED = sorted(n for n in CHECKPOINTS if f"checkpoints/{n}.pt" in load_manifest())


def test_every_checkpoint_is_shipped():
    assert SHIPPED == sorted(CHECKPOINTS)


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_reaches_recorded_accuracy(name):
    model, record = load_checkpoint(name)
    accuracy = evaluate(model, fashion_mnist_loader("test", 1000))
    assert abs(accuracy - record["test_accuracy"]) <= 0.5, f"{name}: {accuracy:.2f}% vs recorded {record}"
    assert record["train_seconds"] <= 600 and record["params"] == sum(p.numel() for p in model.parameters())


def test_cnn_checkpoints_reach_90_percent():
    for name in ("vgg", "mobilenetv2"):
        assert load_checkpoint(name)[1]["test_accuracy"] >= 90.0, name


def test_unknown_checkpoint():
    with pytest.raises(ValueError, match="expected one of"):
        load_checkpoint("resnet")


def test_gpt_checkpoint_reproduces_its_record():
    import torch

    from tinyml_lib.checkpoints import load_gpt
    from tinyml_lib.data import CharTokenizer, austen_text
    from tinyml_lib.gpt import evaluate_loss

    model, record = load_gpt()
    val = torch.from_numpy(CharTokenizer().encode(austen_text("val")))
    assert abs(evaluate_loss(model, val) - record["val_loss"]) < 0.01
    assert record["val_loss"] < 2.0, "the GPT should have learnt far beyond uniform (ln 81 = 4.39 nats/char)"
    zeros = model.ffn_zero_fraction(val[:64 * model.cfg.ctx].view(64, model.cfg.ctx))
    assert zeros == pytest.approx(record["ffn_zero_fraction"], abs=1e-3) and min(zeros) > 0.3


@pytest.mark.skipif("checkpoints/supernet.pt" not in load_manifest(), reason="Lab 04's supernet is not shipped yet")
def test_supernet_checkpoint_reproduces_its_record():
    from tinyml_lib.checkpoints import load_supernet
    from tinyml_lib.data import load_fashion_mnist
    from tinyml_lib.supernet import recalibrate_bn, resize
    from tinyml_lib.training import accuracy

    net, record = load_supernet()
    calibration = record["recipe"]["calibration"]
    images = load_fashion_mnist(calibration["split"], calibration["images"], seed=calibration["seed"])[0]
    x, y = load_fashion_mnist("val")
    for name, config in (("largest", net.space.largest()), ("smallest", net.space.smallest())):
        recalibrate_bn(net, config, images)
        got = accuracy(lambda batch: net.eval()(resize(batch, config.resolution), config), x, y)
        assert abs(got - record[f"{name}_val_accuracy"]) <= 0.5, f"{name}: {got:.2f}% vs recorded {record}"
    assert record["train_seconds"] <= 1200 and record["largest_test_accuracy"] > record["smallest_test_accuracy"]
