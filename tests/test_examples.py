"""Every example runs in its fast mode and reports a result a person would accept, so the
examples never rot."""

import importlib.util
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytest.importorskip("sklearn", reason="the examples extra (scikit-learn) is not installed")


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "check_grads passed" in out and "max |ours - mx.grad|" in out


def test_train_mlp(tmp_path):
    pytest.importorskip("matplotlib")
    result = load("train_mlp").main(fast=True, plot_path=str(tmp_path / "loss.png"))
    assert result["test_accuracy"] > 0.9
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_custom_loss():
    result = load("custom_loss").main(fast=True)
    assert result["huber_error"] < 0.2 < result["mse_error"]


def test_transfer_learning():
    result = load("transfer_learning").main(fast=True)
    assert result["frozen_unchanged"]
    assert result["transfer"] > result["random_features"]


def test_optimizers():
    result = load("optimizers").main(fast=True)
    assert result["max_param_diff"] < 1e-4


def test_dp_sgd():
    assert load("dp_sgd").main(fast=True)["test_accuracy"] > 0.7


def test_newton():
    result = load("newton").main(fast=True)
    assert result["final_grad_norm"] < 1e-5 and result["iterations"] <= 8


def test_rnn_scan():
    result = load("rnn_scan").main(fast=True)
    assert result["grad_diff"] < 1e-4
    assert result["loss_last"] < result["loss_first"] / 2


def test_implicit_diff():
    result = load("implicit_diff").main(fast=True)
    assert result["diff_fd"] < 1e-5 and result["diff_unrolled"] < 1e-5
    assert result["losses"][-1] < result["losses"][0]


def test_train_transformer():
    result = load("train_transformer").main(fast=True)
    losses, lora = result["losses"], result["lora_losses"]
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10])
    assert sum(lora[-10:]) < sum(lora[:10])
    assert result["new_text_loss_after"] < result["new_text_loss_before"]
    assert result["base_unchanged"] and result["trainable"] < result["parameters"] / 5


def test_gaussian_process():
    result = load("gaussian_process").main(fast=True)
    assert result["final_grad_norm"] < 1e-2 and result["steps"] <= 8
    assert result["final_nll"] < result["initial_nll"] - 10
    assert result["rmse"] < 0.5 * result["initial_rmse"]


def test_data_parallel(tmp_path):
    from launching import launch

    # one process, the whole batch, checked against plain MLX inside the example
    single = load("data_parallel").main(fast=True)
    assert single["max_loss_diff_vs_single_process"] < 1e-5
    assert single["test_accuracy"] > 0.9
    # two processes over the ring backend, each with half of every batch: the same run
    out = tmp_path / "run.json"
    launch(2, EXAMPLES / "data_parallel.py", "--fast", "--out", str(out), cwd=EXAMPLES.parent)
    run = json.loads(out.read_text())
    assert run["processes"] == 2 and run["all_reduces_per_step"] == 1
    assert run["max_loss_diff_vs_single_process"] < 1e-5
    np.testing.assert_allclose(run["losses"], single["losses"], rtol=1e-5, atol=1e-5)
