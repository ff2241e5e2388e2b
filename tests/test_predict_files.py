"""skoffice31.prediction.predict_files: image files and folders -> one row per image."""

import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skoffice31 import ImageFlattener, MultiHeadMLPClassifier
from skoffice31.datasets import load_office_digits
from skoffice31.prediction import _format_predictions, predict_files


@pytest.fixture(scope="module")
def fitted():
    """A small fitted Pipeline(ImageFlattener, MultiHeadMLPClassifier) and some images."""
    data = load_office_digits(size=8)
    rows = np.random.RandomState(0).permutation(len(data.images))[:300]
    model = make_pipeline(
        ImageFlattener(size=(8, 8)),
        MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.images[rows], data.target[rows])  # an array: heads head0, head1
    return model, data.images[rows[:6]]


def save_images(folder, images, names):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, name in zip(images, names):
        Image.fromarray(image).save(folder / name)  # PNG: the pixels come back exactly
        paths.append(str(folder / name))
    return paths


def test_rows_hold_the_pipelines_labels_and_probabilities(fitted, tmp_path):
    model, images = fitted
    paths = save_images(tmp_path, images[:3], ["a.png", "b.png", "c.png"])
    rows = predict_files(model, paths)
    expected = np.asarray(model.predict(images[:3]))
    proba = model.predict_proba(images[:3])
    assert [r["path"] for r in rows] == paths
    for i, row in enumerate(rows):
        assert set(row) == {"path", "domain", "domain_probability", "object",
                            "object_probability", "error"}
        assert row["error"] is None
        assert [row["domain"], row["object"]] == [str(v) for v in expected[i]]
        assert row["domain_probability"] == pytest.approx(proba[0][i].max(), abs=1e-6)
        assert row["object_probability"] == pytest.approx(proba[1][i].max(), abs=1e-6)


def test_top_k_is_sorted_and_starts_with_the_label(fitted, tmp_path):
    model, images = fitted
    (path,) = save_images(tmp_path, images[:1], ["a.png"])
    (row,) = predict_files(model, path, top=3)  # one path, not in a list
    for head, classes in zip(["domain", "object"], model[-1].classes_):
        best = row[f"{head}_top"]
        assert len(best) == 3
        probabilities = [b["probability"] for b in best]
        assert probabilities == sorted(probabilities, reverse=True)
        assert best[0] == {"label": row[head], "probability": row[f"{head}_probability"]}
        assert {b["label"] for b in best} <= {str(c) for c in classes}
    (row,) = predict_files(model, [path], top=1)
    assert "domain_top" not in row and "object_top" not in row


def test_folders_stand_for_their_images_recursively_sorted(fitted, tmp_path):
    model, images = fitted
    root = tmp_path / "photos"
    save_images(root / "b", images[:2], ["2.png", "1.png"])
    save_images(root / "a", images[2:3], ["x.png"])
    save_images(root / ".hidden", images[3:4], ["h.png"])
    save_images(root, images[4:5], [".h.png"])
    (root / "notes.txt").write_text("not an image")
    rows = predict_files(model, [root])
    assert [r["path"] for r in rows] == [str(root / "a" / "x.png"), str(root / "b" / "1.png"),
                                         str(root / "b" / "2.png")]
    assert all(r["error"] is None for r in rows)


def test_a_bad_input_costs_only_its_own_row(fitted, tmp_path):
    model, images = fitted
    (good,) = save_images(tmp_path, images[:1], ["good.png"])
    broken = tmp_path / "broken.png"
    broken.write_text("not a png")
    (tmp_path / "empty").mkdir()
    inputs = [str(tmp_path / "missing.png"), str(broken), good, str(tmp_path / "empty")]
    rows = predict_files(model, inputs, top=2)
    assert [r["path"] for r in rows] == inputs
    missing, bad, ok, empty = rows
    assert missing["error"] == "no such file"
    assert empty["error"] == "folder holds no image file"
    assert bad["error"] and "\n" not in bad["error"]
    for row in (missing, bad, empty):
        assert row["domain"] is None and row["object_probability"] is None
        assert "domain_top" not in row
    assert ok["error"] is None and ok["domain"] is not None and len(ok["object_top"]) == 2
    assert ok == predict_files(model, [good], top=2)[0]  # same as predicted alone


def test_heads_are_named_as_in_training(fitted, tmp_path):
    model, images = fitted
    (path,) = save_images(tmp_path, images[:1], ["a.png"])
    model.skoffice31_info_ = {"heads": ["style", "digit"]}
    try:
        (row,) = predict_files(model, [path])
    finally:
        del model.skoffice31_info_
    assert list(row) == ["path", "style", "style_probability", "digit", "digit_probability",
                         "error"]


def test_refuses_what_is_not_a_fitted_image_model(fitted):
    model, images = fitted
    unfitted = make_pipeline(ImageFlattener(size=(8, 8)), MultiHeadMLPClassifier())
    other = make_pipeline(ImageFlattener(size=(8, 8)), LogisticRegression())
    unfitted_match = r"got a Pipeline\(ImageFlattener, MultiHeadMLPClassifier\)"
    with pytest.raises(TypeError, match=unfitted_match):
        predict_files(unfitted, ["a.png"])
    with pytest.raises(TypeError, match=r"got a Pipeline\(ImageFlattener, LogisticRegression\)"):
        predict_files(other, ["a.png"])
    with pytest.raises(TypeError, match="got a MultiHeadMLPClassifier"):
        predict_files(model[-1], ["a.png"])


@pytest.mark.parametrize("top", [0, -1, 1.5, True, "2"])
def test_refuses_a_bad_top(fitted, top):
    with pytest.raises(ValueError, match="top must be a positive integer"):
        predict_files(fitted[0], ["a.png"], top=top)


def test_text_formats_hold_every_row(fitted, tmp_path):
    model, images = fitted
    paths = save_images(tmp_path, images[:2], ["a.png", "b.png"])
    rows = predict_files(model, [*paths, str(tmp_path / "missing.png")])
    heads = ["domain", "object"]
    csv_lines = _format_predictions(rows, heads, "csv").splitlines()
    assert csv_lines[0] == "path,domain,domain_probability,object,object_probability,error"
    assert csv_lines[3].endswith(",,,,no such file")
    table = _format_predictions(rows, heads, "table").splitlines()
    assert table[0].split() == ["path", "domain", "object"]
    assert table[3].endswith("error: no such file")
    assert f"{rows[0]['domain']} ({rows[0]['domain_probability']:.2f})" in table[1]
