"""A base checkpoint trained on the photos the build evaluates on is flagged next to every F1: found from its
provenance or its model card, recorded in the manifest, marked in the report, /variants and the page."""

from __future__ import annotations

from pathlib import Path

from build_models.reporting.report import markdown_table
from build_models.reporting.routes import route_table_lines
from build_models.sources.base_model import KNOWN_CHECKPOINTS
from build_models.sources.overlap import card_datasets, evaluation_overlap
from tests.conftest import DATASET
from tests.fake_app import fake_client

HUB_DATASET = "microsoft/cats_vs_dogs"


def _checkpoint(folder: Path, card: str | None) -> Path:
    folder.mkdir(parents=True)
    if card is not None:
        (folder / "README.md").write_text(card)
    return folder


def test_a_card_that_names_the_evaluation_dataset_is_not_held_out_on_the_hub_id_or_the_local_copy(tmp_path):
    card = f"---\nlicense: apache-2.0\ndatasets:\n- {HUB_DATASET}\n---\n# a fine-tuned ViT\n"
    checkpoint = _checkpoint(tmp_path / "ckpt", card)
    on_hub = evaluation_overlap(str(checkpoint), None, HUB_DATASET)
    assert on_hub is not None and on_hub["datasets"] == [HUB_DATASET] and "not held-out" in on_hub["note"]
    # The local copy's README names the hub dataset whose photos it holds.
    assert evaluation_overlap(str(checkpoint), None, str(DATASET))["datasets"] == [HUB_DATASET]


def test_the_hub_checkpoint_trained_on_cats_vs_dogs_is_flagged_from_its_provenance(tmp_path):
    nateraw = "nateraw/vit-base-cats-vs-dogs"
    overlap = evaluation_overlap(nateraw, KNOWN_CHECKPOINTS[nateraw], str(DATASET))
    assert overlap is not None and overlap["datasets"] == [HUB_DATASET]


def test_checkpoints_trained_elsewhere_are_held_out(tmp_path):
    other = _checkpoint(tmp_path / "imagenet", "---\ndatasets: imagenet-1k\n---\n")
    assert card_datasets((other / "README.md").read_text()) == {"imagenet-1k"}
    assert evaluation_overlap(str(other), None, str(DATASET)) is None
    assert evaluation_overlap(str(_checkpoint(tmp_path / "no-card", None)), None, HUB_DATASET) is None
    assert evaluation_overlap(str(_checkpoint(tmp_path / "bad", "---\n: [\n---\n")), None, HUB_DATASET) is None
    assert evaluation_overlap("google/vit-base-patch16-224", None, str(DATASET)) is None


def _row(variant: str, **extra: object) -> dict:
    return {"variant": variant, "status": "ok", "size_mb": 1.0, "size_note": None, "f1": 0.99, "f1_ci95": None,
            "evaluated_images": 300, "model": {}, "end_to_end": {}, "service_overhead_ms": None,
            "parameters": None, "sparsity": None, "runtime": "x", **extra}


def test_the_report_marks_every_f1_of_a_base_that_was_not_held_out():
    flagged = markdown_table([_row("plain", held_out=False), _row("onnx", held_out=False)])
    assert [line.split(" | ")[2] for line in flagged.splitlines()[2:]] == ["0.9900 †", "0.9900 †"]
    assert [line.split(" | ")[2] for line in markdown_table([_row("plain")]).splitlines()[2:]] == ["0.9900"]
    route = {"route": "auto", "answers": "plain", "how": "x", "f1": 0.99, "f1_ci95": None, "size_mb": 1.0,
             "mean_ms": 2.0, "speedup_vs_plain_e2e_mean": None, "held_out": False}
    assert " 0.9900 † " in route_table_lines([route], 10)[0]


def test_variants_says_beside_every_f1_whether_it_is_held_out(tmp_path):
    overlap = {"datasets": [HUB_DATASET], "note": "trained on these photos"}
    with fake_client(tmp_path / "flagged", manifest_extra={"base_model": {"evaluation_overlap": overlap}}) as client:
        flagged = client.get("/variants").json()
    with fake_client(tmp_path / "held-out") as client:
        held_out = client.get("/variants").json()
    assert [row["f1_held_out"] for row in flagged["variants"]] == [False]
    assert flagged["base_model"]["evaluation_overlap"] == overlap
    assert [row["f1_held_out"] for row in held_out["variants"]] == [True]
