"""
From images to two labels: a Pipeline with ImageFlattener
=========================================================

:class:`~skoffice31.ImageFlattener` turns images (file paths, PIL images or
an array of images) into ``float32`` vectors: it converts the colour mode,
resizes and scales the pixels. Put in front of
:class:`~skoffice31.MultiHeadMLPClassifier` it makes one estimator that goes
from images to (domain, object) pairs, and the image size becomes a
hyper-parameter like any other.
"""

# %%
# Images in
# ---------
# ``data.images`` is an ``(n, 32, 32, 3)`` array of ``uint8`` pixels; the
# targets are the domain and the object of each image.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline

from skoffice31 import ImageFlattener, MultiHeadMLPClassifier
from skoffice31.datasets import load_office_digits
from skoffice31.metrics import exact_match_scorer, head_accuracy_scorer

# The examples train for a fixed number of epochs on purpose.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

data = load_office_digits(size=(32, 32))
y = pd.DataFrame(data.target, columns=list(data.head_names))
images_train, images_test, y_train, y_test = train_test_split(
    data.images, y, test_size=0.25, random_state=0, stratify=y["domain"]
)
print(images_train.shape, images_train.dtype)

# %%
# The pipeline
# ------------
# The flattener shrinks the images to 16x16 and scales the pixels to
# ``[0, 1]``; the classifier has one shared hidden layer and two heads.
model = make_pipeline(
    ImageFlattener(size=(16, 16)),
    MultiHeadMLPClassifier(hidden=(64,), max_iter=20, batch_size=32, random_state=0),
)
model.fit(images_train, y_train)
print(model[-1].score_heads(model[:-1].transform(images_test), y_test))

# %%
# ``predict`` returns one (domain, object) pair per image:
pred = model.predict(images_test[:5])
for (dom, obj), (true_dom, true_obj) in zip(pred, y_test.to_numpy()[:5]):
    print(f"true ({true_dom}, {true_obj}) -> predicted ({dom}, {obj})")

# %%
# What the network sees
# ---------------------
# ``inverse_transform`` turns vectors back into images: here the 16x16
# inputs of the first test images.
seen = model[0].inverse_transform(model[0].transform(images_test[:6]))
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for ax, img, (dom, obj) in zip(axes, seen, y_test.to_numpy()[:6]):
    ax.imshow(img)
    ax.set_title(f"{dom}\n{obj}", fontsize=8)
    ax.axis("off")
plt.show()

# %%
# The image size as a hyper-parameter
# -----------------------------------
# Step parameters are reached with ``<step>__<parameter>``. A multi-metric
# search scores each head and refits the size that is best for the object.
# The scorers refer to the heads by column index (0: domain, 1: object),
# which works for a pipeline as well as for the bare classifier.
search = GridSearchCV(
    model,
    {"imageflattener__size": [(8, 8), (16, 16)]},
    scoring={
        "domain": head_accuracy_scorer(0),
        "object": head_accuracy_scorer(1),
        "both": exact_match_scorer,
    },
    refit="object",
    # shuffled folds: scikit-learn's default for a 2-column y is an unshuffled
    # KFold, and the loaders return the rows sorted by domain
    cv=KFold(2, shuffle=True, random_state=0),
    n_jobs=2,
)
search.fit(images_train, y_train)
results = pd.DataFrame(search.cv_results_)
print(results[["param_imageflattener__size", "mean_test_domain", "mean_test_object",
               "mean_test_both", "mean_fit_time"]].round(3).to_string(index=False))
print("best size for the object head:", search.best_params_)
print("its test accuracy (object):", round(search.score(images_test, y_test), 3))

# %%
# Per domain
# ----------
# The object head is not equally good in every domain: the noisy,
# low-resolution "webcam" style is the hardest.
best = search.best_estimator_
pred = best.predict(images_test)
per_domain = {
    dom: np.mean(pred[mask, 1] == y_test["object"].to_numpy()[mask])
    for dom in np.unique(y_test["domain"])
    for mask in [y_test["domain"].to_numpy() == dom]
}
print({k: round(float(v), 3) for k, v in per_domain.items()})
