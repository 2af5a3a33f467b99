"""Dataset and base-model sources: hub ids, local folders, scratch presets, and the offline errors."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

from build_models.cli import main as build_main
from build_models.sources.base_model import SCRATCH_PRESETS, BaseModelSource, label_maps, load_base_model
from build_models.sources.dataset import load_labelled_images
from build_models.sources.hub import hub_reachable
from vitcore.errors import BaseModelError, DatasetUnavailableError

LABELS = ["cat", "dog"]


def _save_checkpoint(folder, labels):
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(**SCRATCH_PRESETS["tiny"], **label_maps(labels)))
    model.save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return model


def test_hub_is_treated_as_unreachable_in_tests():
    assert hub_reachable() is False


def test_hub_dataset_without_hub_names_what_to_pass():
    with pytest.raises(DatasetUnavailableError, match="--dataset"):
        load_labelled_images("microsoft/cats_vs_dogs")
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        load_labelled_images("./no/such/folder")


def test_cli_stops_with_one_clear_line(tmp_path, capsys):
    code = build_main(["--profile", "seed", "--artifacts", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and "--dataset" in err[0]


def test_local_checkpoint_with_our_labels_is_used_as_is(tmp_path):
    saved = _save_checkpoint(tmp_path / "ckpt", LABELS)
    loaded = load_base_model(BaseModelSource.parse(str(tmp_path / "ckpt")), LABELS, seed=0)
    assert not loaded.needs_training and loaded.recipe == "finetune"
    for a, b in zip(saved.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert (loaded.preprocess.height, loaded.preprocess.width) == (32, 32)


def test_local_checkpoint_with_other_labels_gets_a_new_head(tmp_path):
    _save_checkpoint(tmp_path / "ckpt", ["tench", "goldfish", "shark"])
    loaded = load_base_model(BaseModelSource.parse(str(tmp_path / "ckpt")), LABELS, seed=0)
    assert loaded.needs_training
    assert loaded.model.config.num_labels == 2 and loaded.model.config.id2label == {0: "cat", 1: "dog"}
    assert loaded.model.classifier.out_features == 2


def test_scratch_presets_and_bad_sources():
    loaded = load_base_model(BaseModelSource.parse("scratch:vit-base"), LABELS, seed=0)
    config = loaded.model.config
    assert (config.image_size, config.patch_size, config.hidden_size, config.num_hidden_layers) == (224, 16, 768, 12)
    assert loaded.needs_training and loaded.recipe == "scratch"
    with pytest.raises(BaseModelError, match="unknown scratch preset"):
        BaseModelSource.parse("scratch:huge")
    with pytest.raises(BaseModelError, match="unreachable"):
        load_base_model(BaseModelSource.parse("google/vit-base-patch16-224"), LABELS, seed=0)


def test_device_choice():
    from build_models.cli import resolve_device

    assert resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto") == resolve_device("cuda") == "cuda"
        return
    assert resolve_device("auto") == "cpu"
    with pytest.raises(SystemExit, match="no CUDA device"):
        resolve_device("cuda")


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request 200 and records the request line: a stand-in for a hub, or for a proxy."""

    seen: list[str] = []

    def do_HEAD(self):  # noqa: N802 - the http.server hook name
        _Recorder.seen.append(self.requestline)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    hub_reachable.cache_clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    hub_reachable.cache_clear()


def test_hub_detection_asks_the_hub_client_at_its_endpoint(recorder, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", recorder)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert hub_reachable() is True
    assert _Recorder.seen == ["HEAD /api/models/google/vit-base-patch16-224 HTTP/1.1"]


def test_hub_detection_goes_through_the_users_proxy(recorder, monkeypatch):
    """The endpoint's host does not resolve here; only a client that honours HTTP(S)_PROXY reaches it."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.invalid")
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", recorder)
    assert hub_reachable() is True
    assert _Recorder.seen == ["HEAD http://hub.invalid/api/models/google/vit-base-patch16-224 HTTP/1.1"]
    hub_reachable.cache_clear()
    monkeypatch.delenv("HTTP_PROXY")
    assert hub_reachable() is False  # without the proxy the same endpoint is out of reach
