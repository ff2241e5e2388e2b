"""skoffice31.persistence: the safe .skops model files (issue 11, items 1 and 9)."""

import errno
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pytest
import skops.io as sio
from PIL import Image
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skoffice31 import ImageFlattener, MultiHeadMLPClassifier, cli, persistence
from skoffice31.datasets import load_office_digits
from skoffice31.persistence import (
    TRUSTED_TYPES,
    ModelFileError,
    ModelVersionWarning,
    UntrustedTypesError,
    load_model,
    save_model,
)


def assert_one_line_error(stderr, *words):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "error" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def fitted():
    """A small fitted Pipeline(ImageFlattener, MultiHeadMLPClassifier), Adam and SGD."""
    data = load_office_digits(size=8)
    rng = np.random.RandomState(0)
    rows = rng.permutation(len(data.images))[:300]
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for solver in ("adam", "sgd"):
            model = make_pipeline(
                ImageFlattener(size=(8, 8)),
                MultiHeadMLPClassifier(hidden=(8,), solver=solver, max_iter=3, random_state=0),
            )
            models[solver] = model.fit(data.images[rows], data.target[rows])
    return models, data.images[rows[:20]]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_roundtrip_predicts_the_same(fitted, tmp_path, solver):
    models, images = fitted
    model = models[solver]
    path = save_model(model, tmp_path / "m.skops", info={"note": "hello", "acc": 0.5})
    assert zipfile.is_zipfile(path)
    # every type in the file is trusted: the package's list covers its own objects
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted and set(untrusted) <= set(TRUSTED_TYPES)
    loaded, meta = load_model(path, return_info=True)
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    for a, b in zip(loaded.predict_proba(images), model.predict_proba(images)):
        np.testing.assert_array_equal(a, b)
    assert meta["info"] == {"note": "hello", "acc": 0.5}
    import sklearn

    import skoffice31

    assert meta["versions"]["skoffice31"] == skoffice31.__version__
    assert meta["versions"]["scikit-learn"] == sklearn.__version__
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skops"]  # no temporary file


def test_loaded_adam_model_continues_partial_fit_like_the_original(fitted, tmp_path):
    """The optimizer state is saved: partial_fit after loading continues, not restarts."""
    models, _ = fitted
    data = load_office_digits(size=8)
    X = models["adam"][0].transform(data.images[:100])
    clf = models["adam"][-1]
    twin = pickle.loads(pickle.dumps(clf))
    loaded = load_model(save_model(clf, tmp_path / "clf.skops"))
    for est in (twin, loaded):
        est.partial_fit(X, data.target[:100])
    for a, b in zip(loaded.coefs_, twin.coefs_):
        np.testing.assert_array_equal(a, b)


class _Marker:
    """Unpickling this runs ``open(path, "w")``: the file appears if the code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    for name, dump in [("evil.joblib", joblib.dump), ("evil.pkl", None),
                       ("evil.joblib.gz", lambda o, p: joblib.dump(o, p, compress=3))]:
        path = tmp_path / name
        if dump is None:
            path.write_bytes(pickle.dumps(_Marker(marker)))
        else:
            dump(_Marker(marker), path)
        with pytest.raises(ModelFileError, match="pickle|compressed") as info:
            load_model(path)
        assert "runs code" in str(info.value) and "save_model" in str(info.value)
        assert cli.main(["predict", str(path), "x.png"]) == 2
        assert_one_line_error(capsys.readouterr().err, "cannot load model", name, "refused")
        assert not marker.exists()
    # the control: the file really is an attack (joblib.load runs it)
    joblib.load(tmp_path / "evil.joblib")
    assert marker.exists()


class Evil(BaseEstimator):
    """Not trusted: building it from a skops file would create the marker."""

    def __init__(self, path=""):
        self.path = path

    def __setstate__(self, state):
        open(state["path"], "w").close()
        self.__dict__.update(state)


def test_skops_file_with_untrusted_type_is_refused(fitted, tmp_path, capsys):
    marker = tmp_path / "pwned"
    models, _ = fitted
    path = tmp_path / "model.skops"
    save_model(make_pipeline(Evil(str(marker)), models["adam"][-1]), path)
    with pytest.raises(UntrustedTypesError) as info:
        load_model(path)
    assert info.value.types == [f"{__name__}.Evil"]
    assert f"{__name__}.Evil" in str(info.value)
    assert cli.main(["predict", str(path), "x.png"]) == 2
    assert_one_line_error(capsys.readouterr().err, "does not trust", f"{__name__}.Evil")
    assert not marker.exists()
    # trusting it explicitly is the user's choice (and then it runs)
    load_model(path, trusted=[f"{__name__}.Evil"])
    assert marker.exists()


def test_other_files_say_what_they_are(tmp_path, capsys):
    (tmp_path / "text.skops").write_text("garbage")
    (tmp_path / "empty.skops").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("hello.txt", "not skops")
    sio.dump({"a": np.arange(3)}, tmp_path / "dict.skops")
    cases = [("text.skops", "a text file"), ("empty.skops", "an empty file"),
             ("plain.zip", "not a readable skops file"), ("dict.skops", "holding a dict")]
    for name, words in cases:
        with pytest.raises(ModelFileError, match=words):
            load_model(tmp_path / name)
        assert cli.main(["predict", str(tmp_path / name), "x.png"]) == 2
        assert_one_line_error(capsys.readouterr().err, "cannot load model", words)
    assert cli.main(["predict", str(tmp_path), "x.png"]) == 2
    assert_one_line_error(capsys.readouterr().err, "it is a folder")


def test_truncated_skops_file(fitted, tmp_path, capsys):
    models, _ = fitted
    whole = save_model(models["sgd"], tmp_path / "whole.skops").read_bytes()
    cut = tmp_path / "cut.skops"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        load_model(cut)
    assert cli.main(["predict", str(cut), "x.png"]) == 2
    assert_one_line_error(capsys.readouterr().err, "truncated")


def test_predict_refuses_another_pipeline(tmp_path, capsys):
    """Item 9: a scikit-learn Pipeline not made by train is named, not an AttributeError."""
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    path = save_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
                      tmp_path / "other.skops")
    assert cli.main(["predict", str(path), "x.png"]) == 2
    assert_one_line_error(capsys.readouterr().err,
                          "Pipeline(StandardScaler, LogisticRegression)",
                          "not a model saved by 'skoffice31 train'")
    path = save_model(MultiHeadMLPClassifier(), tmp_path / "unfitted.skops")
    assert cli.main(["predict", str(path), "x.png"]) == 2
    assert_one_line_error(capsys.readouterr().err, "MultiHeadMLPClassifier", "expected a fitted")


def test_version_mismatch_warns(fitted, tmp_path, monkeypatch, capsys):
    models, images = fitted
    real = persistence._versions()
    monkeypatch.setattr(persistence, "_versions",
                        lambda: {**real, "skoffice31": "0.0.1", "scikit-learn": "1.0"})
    path = save_model(models["adam"], tmp_path / "old.skops")
    monkeypatch.setattr(persistence, "_versions", lambda: real)
    with pytest.warns(ModelVersionWarning, match="skoffice31 0.0.1, scikit-learn 1.0") as rec:
        load_model(path)
    assert rec[0].message.saved["skoffice31"] == "0.0.1"
    assert rec[0].message.current["skoffice31"] == real["skoffice31"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelVersionWarning)  # same versions: no warning
        load_model(save_model(models["adam"], tmp_path / "new.skops"))
    image = tmp_path / "a.png"
    Image.fromarray(images[0]).save(image)
    assert cli.main(["predict", str(path), str(image)]) == 0
    out = capsys.readouterr()
    err = out.err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "0.0.1" in err[0]
    assert out.out.startswith("path") and str(image) in out.out  # predicted as usual


def test_failed_save_leaves_the_old_file_and_no_temporary(fitted, tmp_path, monkeypatch):
    models, _ = fitted
    path = save_model(models["sgd"], tmp_path / "m.skops")
    before = path.read_bytes()

    def full_disk(obj, file):
        with open(file, "wb") as f:
            f.write(b"PK half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sio, "dump", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_model(models["adam"], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skops"]


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "none.skops")


def test_model_with_transfer_parameters_roundtrips(tmp_path):
    # frozen layers, an adversarial head and missing labels: the file keeps
    # the parameters, and the loaded model goes on exactly like the original
    data = load_office_digits(size=8)
    rows = np.random.RandomState(1).permutation(len(data.images))[:200]
    target = data.target[rows].astype(object)  # columns: domain, object
    target[:50, 1] = None  # unlabelled rows for the object head
    params = dict(hidden=(8, 6), max_iter=2, random_state=0, n_frozen_layers=1,
                  adversarial_heads={0: 0.5}, adversarial_schedule="dann")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(ImageFlattener(size=(8, 8)), MultiHeadMLPClassifier(**params))
        model.fit(data.images[rows], target)
    path = save_model(model, tmp_path / "t.skops")
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    loaded = load_model(path)
    clf, original = loaded[-1], model[-1]
    assert {k: clf.get_params()[k] for k in params} == params
    np.testing.assert_array_equal(loaded.predict(data.images[:10]),
                                  model.predict(data.images[:10]))
    X = model[0].transform(data.images[rows])
    original.partial_fit(X, target)
    clf.partial_fit(X, target)
    for p, q in zip(clf.coefs_ + clf.intercepts_, original.coefs_ + original.intercepts_):
        np.testing.assert_array_equal(p, q)
