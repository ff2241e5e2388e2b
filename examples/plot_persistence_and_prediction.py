"""
Saving a model and predicting new image files
=============================================

A fitted ``Pipeline(ImageFlattener, MultiHeadMLPClassifier)`` is saved with
:func:`skoffice31.persistence.save_model` as a ``.skops`` file and loaded
back with :func:`skoffice31.persistence.load_model` wherever it is needed.
Because the flattener is part of the pipeline, the loaded model takes image
*files* and prepares them exactly as in training (here: shrunk to 16x16,
converted to RGB, scaled to ``[0, 1]``). This is what ``skoffice31 train``
and ``skoffice31 predict`` do.

Why not :func:`joblib.dump`? Loading a pickle or joblib file runs code from
the file, so a model file from someone else could run anything on your
machine. A ``.skops`` file only describes the objects, and
:func:`~skoffice31.persistence.load_model` checks every type it names
against a trusted list before building anything (see :ref:`persistence`).
"""

# %%
# Train and save
# --------------
import tempfile
import warnings
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skoffice31 import ImageFlattener, MultiHeadMLPClassifier
from skoffice31.datasets import load_office_digits
from skoffice31.persistence import ModelFileError, load_model, save_model

# The examples train for a fixed number of epochs on purpose.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

data = load_office_digits(size=(32, 32))
y = pd.DataFrame(data.target, columns=list(data.head_names))
images_train, images_new, y_train, y_new = train_test_split(
    data.images, y, test_size=8, random_state=1
)
model = make_pipeline(
    ImageFlattener(size=(16, 16)),
    MultiHeadMLPClassifier(hidden=(128,), max_iter=30, batch_size=32, random_state=0),
)
model.fit(images_train, y_train)

folder = Path(tempfile.mkdtemp())
save_model(model, folder / "model.skops", info={"note": "16x16 digits, 30 epochs"})
print("saved:", sorted(p.name for p in folder.iterdir()))

# %%
# New images arrive as files
# --------------------------
# Here we write eight images the model has not seen as PNG files, the way
# new photos would arrive.
paths = []
for i, img in enumerate(images_new):
    path = folder / f"new_{i}.png"
    Image.fromarray(img).save(path)
    paths.append(str(path))

# %%
# Load and predict
# ----------------
# ``predict_proba`` gives one probability table per head; the class order is
# the classifier's ``classes_``.
loaded, meta = load_model(folder / "model.skops", return_info=True)
print("saved with", meta["versions"], "-", meta["info"]["note"])
pred = loaded.predict(paths)
proba_domain, proba_object = loaded.predict_proba(paths)
assert np.array_equal(pred, model.predict(images_new))  # same as before saving
for path, (dom, obj), pd_, po, (tdom, tobj) in zip(
    paths, pred, proba_domain, proba_object, y_new.to_numpy()
):
    print(
        f"{Path(path).name}: domain {dom} ({pd_.max():.2f}), object {obj} ({po.max():.2f})"
        f"   true: ({tdom}, {tobj})"
    )

# %%
fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for ax, path, (dom, obj), (tdom, tobj) in zip(axes, paths, pred, y_new.to_numpy()):
    ax.imshow(Image.open(path))
    ok = (dom == tdom) + (obj == tobj)
    ax.set_title(f"{dom}\n{obj}", fontsize=8, color={2: "green", 1: "orange", 0: "red"}[ok])
    ax.axis("off")
fig.suptitle("Predicted (domain, object) of new image files", fontsize=9)
plt.show()

# %%
# A file that cannot be read raises a ``ValueError`` that names it, so a
# batch never silently loses rows; predict files one by one to skip bad ones
# (``skoffice31 predict`` does that).
try:
    loaded.predict([paths[0], str(folder / "missing.jpg")])
except ValueError as exc:
    print("ValueError:", exc)

# %%
# A pickle is refused, unread
# ---------------------------
# A joblib file is recognised by its first bytes and refused with a message
# that says why; nothing in it runs. Convert a pickle *you made yourself*
# once with ``save_model(joblib.load(path), "model.skops")``.
joblib.dump(model, folder / "model.joblib")
try:
    load_model(folder / "model.joblib")
except ModelFileError as exc:
    print("ModelFileError:", exc)
