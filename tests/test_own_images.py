"""Your own images: ``train`` on an ImageFolder and on a CSV of three heads,
then ``predict --format json`` on a folder, end to end; and the loaders behind.

The images are office-digits renderings saved as PNG files (16x16), so the
labels are learnable and the whole file runs in seconds.
"""

import json
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from skoffice31 import cli
from skoffice31.datasets import (
    SkippedFilesWarning,
    load_image_folder,
    load_image_table,
    load_office_digits,
)

EVEN = {"zero", "two", "four", "six", "eight"}


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """``folder/<digit>/*.png``, ``imgs/*.png`` + ``labels.csv`` (domain, digit, parity)."""
    root = tmp_path_factory.mktemp("own")
    digits = load_office_digits(size=16)
    lines = ["path,domain,digit,parity"]
    truth = {}
    for i in range(0, len(digits.images), 4):  # 450 images, every domain and digit
        domain, digit = digits.target[i]
        parity = "even" if digit in EVEN else "odd"
        p = root / "folder" / digit / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.images[i]).save(p)
        q = root / "imgs" / f"{i:04d}.png"
        q.parent.mkdir(exist_ok=True)
        Image.fromarray(digits.images[i]).save(q)
        lines.append(f"imgs/{i:04d}.png,{domain},{digit},{parity}")
        truth[str(q)] = {"domain": domain, "digit": digit, "parity": parity}
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root, truth


TRAIN = ["--epochs", "40", "--hidden", "32", "--size", "16", "--seed", "0", "-q"]


def test_train_on_an_image_folder_then_predict_json_on_a_folder(own, tmp_path, capsys):
    root, truth = own
    model = tmp_path / "digits.skops"
    assert cli.main(["train", "--data", str(root / "folder"), "--head-name", "digit",
                     *TRAIN, "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "ImageFolder images" in out and "450 images, digit 10 classes" in out
    assert (tmp_path / "digits_per_class.csv").exists()
    assert (tmp_path / "digits_confusion_digit.png").exists()

    assert cli.main(["predict", str(model), str(root / "imgs"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == sorted(truth)  # every image of the folder, sorted
    assert set(rows[0]) == {"path", "digit", "digit_probability", "error"}
    from skoffice31.persistence import load_model

    pipe = load_model(model)
    assert pipe[-1].head_names_ == ("digit",)
    paths = [r["path"] for r in rows]
    proba = pipe.predict_proba(paths)
    proba = proba[0] if isinstance(proba, list) else proba
    classes = pipe[-1].classes_[0] if isinstance(pipe[-1].classes_, list) else pipe[-1].classes_
    for i, r in enumerate(rows):
        assert r["error"] is None
        assert r["digit"] == classes[np.argmax(proba[i])]
        assert r["digit_probability"] == pytest.approx(proba[i].max(), abs=1e-6)
    acc = np.mean([r["digit"] == truth[r["path"]]["digit"] for r in rows])
    assert acc > 0.5  # learnt (chance is 0.1); most of these images were trained on


def test_train_on_a_csv_of_three_heads_then_predict_json_on_a_folder(own, tmp_path, capsys):
    root, truth = own
    model = tmp_path / "three.skops"
    (root / "imgs" / "broken.png").write_bytes(b"not a png")
    try:
        assert cli.main(["train", "--data", str(root / "labels.csv"), *TRAIN,
                         "--out", str(model)]) == 0
        out = capsys.readouterr().out
        assert "domain 3 classes, digit 10 classes, parity 2 classes" in out
        for head in ("domain", "digit", "parity"):
            assert re.search(rf" {head} [01]\.\d{{3}} \(majority class", out), head
            assert (tmp_path / f"three_confusion_{head}.png").exists()

        out_json = tmp_path / "pred.json"
        code = cli.main(["predict", str(model), str(root / "imgs"), "--format", "json",
                         "--out", str(out_json)])
        assert code == 1  # broken.png has an error row; the others are predicted
        rows = json.loads(out_json.read_text(encoding="utf-8"))
    finally:
        (root / "imgs" / "broken.png").unlink()
    by_path = {r["path"]: r for r in rows}
    broken = by_path.pop(str(root / "imgs" / "broken.png"))
    assert broken["error"] and broken["domain"] is None and broken["parity_probability"] is None
    assert sorted(by_path) == sorted(truth)
    for r in by_path.values():
        assert r["error"] is None
        for head in ("domain", "digit", "parity"):
            assert 0.0 <= r[f"{head}_probability"] <= 1.0
    for head, floor in (("domain", 0.8), ("digit", 0.5), ("parity", 0.7)):
        acc = np.mean([r[head] == truth[p][head] for p, r in by_path.items()])
        assert acc > floor, (head, acc)


def test_train_error_names_the_layout(own, tmp_path, capsys):
    root, _ = own
    bad = tmp_path / "bad.csv"
    bad.write_text("path\nimgs/0000.png\n", encoding="utf-8")
    assert cli.main(["train", "--data", str(bad), "--out", str(tmp_path / "m.skops")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no head column" in err


# ------------------------------------------------------------------ loaders


def test_load_image_folder_labels_are_the_folder_names(own):
    root, truth = own
    data = load_image_folder(root / "folder", head_name="digit", size=16)
    assert data.head_names == ("digit",) and data.target.shape == (450, 1)
    assert list(data.target_names["digit"]) == sorted(EVEN | {"one", "three", "five",
                                                              "seven", "nine"})
    for path, label in zip(data.filenames, data.target[:, 0]):
        assert path.split("/")[-2] == label
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")),
                              data.images[list(data.filenames).index(path)])
    assert data.data.shape == (450, 16 * 16 * 3) and data.data.max() <= 1.0


def test_load_image_table_resolves_paths_against_the_file(own, tmp_path, monkeypatch):
    root, truth = own
    monkeypatch.chdir(tmp_path)  # not the file's folder
    data = load_image_table(root / "labels.csv", size=16, as_frame=True)
    assert data.head_names == ("domain", "digit", "parity")
    assert list(data.target.columns) == ["domain", "digit", "parity"]
    assert list(data.filenames) == sorted(truth)  # the file's order
    for path, row in zip(data.filenames, data.target.itertuples(index=False)):
        assert tuple(row) == tuple(truth[path].values())


def test_load_image_table_tsv_missing_and_broken_files(tmp_path):
    img = np.zeros((6, 5, 3), np.uint8)
    img[2, 3] = (200, 10, 30)
    Image.fromarray(img).save(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    (tmp_path / "t.tsv").write_text(
        "path\tcolour\n"
        "a.png\tred\n"
        f"{tmp_path / 'a.png'}\tred\n"  # absolute paths work too
        "gone.png\tblue\n"
        "bad.png\tblue\n", encoding="utf-8")
    with pytest.warns(SkippedFilesWarning) as rec:
        data = load_image_table(tmp_path / "t.tsv", size=None)
    w = rec[0].message
    assert [p.rsplit("/", 1)[-1] for p in w.files] == ["gone.png", "bad.png"]
    assert w.reasons[0] == "no such file"
    assert data.target[:, 0].tolist() == ["red", "red"]
    assert np.array_equal(data.images[0], img)
    assert list(data.target_names["colour"]) == ["red"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "is empty"),
        ("path\na.png\n", "no head column"),
        ("path,h,h\na.png,x,y\n", "distinct"),
        ("path,h\na.png\n", "line 2 .* 1 cells"),
        ("path,h\na.png,\n", "line 2 .* no label for head"),
        ("path,h\ngone.png,x\n", "none of the 1 files listed"),
    ],
)
def test_load_image_table_errors(tmp_path, text, match):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_image_table(tmp_path / "t.csv", size=4)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageFolder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="head_name"):
        load_image_folder(tmp_path / "empty", head_name="")


def test_detect_layout(own, tmp_path):
    from skoffice31.study import detect_layout

    root, _ = own
    assert detect_layout(root / "folder") == "folder"
    assert detect_layout(root / "labels.csv") == "table"
    (tmp_path / "amazon" / "images" / "mug").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "amazon/images/mug/a.jpg")
    assert detect_layout(tmp_path) == "office31"
    with pytest.raises(FileNotFoundError):
        detect_layout(tmp_path / "missing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect_layout(tmp_path / "amazon") == "office31"  # the loader then explains


def test_readme_section_commands_parse_and_name_the_three_layouts():
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Train on your own images", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["skoffice31", "train"], ["skoffice31", "train"],
                                         ["skoffice31", "predict"]]
    parser = cli.build_parser()
    args = [parser.parse_args(c[1:]) for c in commands]
    assert args[0].head_name == "animal" and args[0].out == "animals.skops"
    assert args[1].data == "labels.csv" and args[1].out == "mine.skops"
    assert args[2].format == "json" and args[2].images == ["new_photos/"]


def test_layout_flag_overrides_the_detection(own, tmp_path, capsys):
    root, _ = own
    out = str(tmp_path / "m.skops")
    assert cli.main(["train", "--data", str(root / "folder"), "--layout", "table",
                     "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a CSV/TSV file" in err
    # the ImageFolder tree read as Office-31: its class folders would be domains
    assert cli.main(["train", "--data", str(root / "folder"), "--layout", "office31",
                     "--out", out]) == 2
    assert "is not an Office-31 folder" in capsys.readouterr().err
