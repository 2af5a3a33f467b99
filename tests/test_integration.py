"""The smoke build served through the real app: predictions equal the build-time evaluation."""

import json

import numpy as np
import pytest

from build_models.measure.evaluate import read_predictions
from build_models.measure.scores import classification_metrics
from vitcore.catalogue import list_variants

SAMPLE = 12


def test_every_registered_variant_was_built(smoke_artifacts, dataset):
    manifest = json.loads((smoke_artifacts / "manifest.json").read_text())
    assert sorted(manifest["variants"]) == sorted(list_variants())
    for entry in manifest["variants"].values():
        assert entry["status"] == "ok"
        assert entry["metrics"]["count"] == manifest["dataset"]["split"]["test"]["count"]
        if entry["metrics"].get("f1_source") == "plain":  # a lossless copy run on a sample: plain's F1
            assert entry["metrics"]["f1"] == manifest["variants"]["plain"]["metrics"]["f1"], entry["name"]
            continue
        # The recorded F1 is the one its recorded per-image predictions give against the dataset's labels.
        ids, probabilities = read_predictions(smoke_artifacts / entry["predictions_file"])
        labels = dataset.labels[[int(image_id.split(":")[0]) for image_id in ids]]
        recomputed = classification_metrics(labels, probabilities.argmax(1), manifest["label_names"])
        assert entry["metrics"]["f1"] == pytest.approx(recomputed["f1"], abs=1e-9), entry["name"]
        assert entry["size_mb"] > 0


def test_health_and_docs(client):
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/predict/{variant}" in spec["paths"]


def test_variants_lists_metadata(client):
    body = client.get("/variants").json()
    names = [v["name"] for v in body["variants"]]
    assert names == list_variants()
    plain = body["variants"][0]
    assert plain["available"] and "f1" in plain["metrics"] and plain["size_mb"] > 0
    assert body["label_names"] == ["cat", "dog"]


@pytest.mark.parametrize("variant", list_variants())
def test_served_predictions_equal_build_time_evaluation(client, smoke_artifacts, test_split_jpegs, variant):
    ids, expected = read_predictions(smoke_artifacts / "eval" / f"{variant}.json")
    assert ids == [image_id for image_id, _ in test_split_jpegs]
    for index in range(0, len(ids), max(1, len(ids) // SAMPLE)):
        _, jpeg = test_split_jpegs[index]
        response = client.post(f"/predict/{variant}", files={"file": ("x.jpg", jpeg, "image/jpeg")})
        assert response.status_code == 200, response.text
        body = response.json()
        served = np.array([body["probabilities"]["cat"], body["probabilities"]["dog"]])
        np.testing.assert_allclose(served, expected[index], atol=1e-5)
        assert body["label"] == ["cat", "dog"][int(expected[index].argmax())]
        assert body["score"] == pytest.approx(served.max())
        assert body["variant"] == variant and body["model_time_ms"] > 0


def test_raw_image_body_is_accepted(client, test_split_jpegs):
    _, jpeg = test_split_jpegs[0]
    raw = client.post("/predict/plain", content=jpeg, headers={"content-type": "image/jpeg"})
    multipart = client.post("/predict/plain", files={"file": ("x.jpg", jpeg, "image/jpeg")})
    assert raw.status_code == 200, raw.text
    assert raw.json()["probabilities"] == multipart.json()["probabilities"]


def test_artifact_files_are_readable_by_every_user(smoke_artifacts):
    """The service often runs as another user than the build (a container's non-root user on a mount)."""
    import json

    manifest = json.loads((smoke_artifacts / "manifest.json").read_text())
    for entry in manifest["variants"].values():
        for item in entry["files"]:
            assert (smoke_artifacts / item["path"]).stat().st_mode & 0o004, item["path"]


def test_variants_lists_the_routes_beside_the_variants(client, smoke_artifacts):
    manifest = json.loads((smoke_artifacts / "manifest.json").read_text())
    listed = client.get("/variants").json()
    # auto, unconstrained: the highest validation F1 (what the router chooses on), ties to the lower end-to-end
    # mean the router holds (the build's, or this host's once a /benchmark in another test has re-timed it); it
    # reports the variant's test F1.
    routed = {row["name"]: row["routed_on"] for row in listed["variants"] if row["routed_on"]}
    assert set(routed) == {name for name in manifest["latency"]["results"]
                           if any(row["name"] == name and row["available"] for row in listed["variants"])}
    best = max(routed, key=lambda n: (manifest["variants"][n]["validation"]["f1"], -routed[n]["end_to_end_ms"]))
    cascade = manifest["cascade"]
    routes = {row["route"]: row for row in listed["routes"]}
    assert routes["auto"]["answers"] == best and routes["auto"]["available"]
    assert routes["auto"]["f1"] == manifest["variants"][best]["metrics"]["f1"]
    assert routes["auto"]["f1_ci95"] == manifest["variants"][best]["metrics"]["f1_ci95"]
    assert routes["auto"]["mean_ms"] == pytest.approx(routed[best]["end_to_end_ms"], abs=1e-3)
    assert routes["cascade"]["answers"] == f"{cascade['first']} → {cascade['then']}"
    assert (routes["cascade"]["f1"], routes["cascade"]["f1_ci95"], routes["cascade"]["mean_ms"]) == (
        cascade["test"]["f1"], cascade["test"]["f1_ci95"], cascade["test"]["mean_ms"])
    assert routes["cascade"]["available"]
    sizes = {name: entry["size_mb"] for name, entry in manifest["variants"].items()}
    assert routes["auto"]["size_mb"] == pytest.approx(sizes[best])
    assert routes["cascade"]["size_mb"] == pytest.approx(sizes[cascade["first"]] + sizes[cascade["then"]])
