"""
Transfer to a new domain with a few labelled images
===================================================

The study's motivation for learning from several domains: a model trained on
clean product shots (Office-31's *amazon*) does much worse on DSLR or webcam
photos of the same objects, and labelling many photos of each new domain is
expensive. Here we train the object classifier on the built-in dataset's
``product`` domain, then continue training it (``warm_start`` or
``partial_fit``) on a handful of labelled ``dslr`` images, and compare with a
model trained on those few ``dslr`` images alone.
"""

# %%
# Source and target domains
# -------------------------
import copy
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.datasets import load_office_digits

# The examples train for a fixed number of epochs on purpose.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

data = load_office_digits(size=(16, 16))
X, domain, obj = data.data, data.target[:, 0], data.target[:, 1]
source, target = domain == "product", domain == "dslr"
print(f"{source.sum()} product images, {target.sum()} dslr images")

# Half of the dslr images are the pool the few labelled ones come from, the
# other half is the test set.
X_pool, X_test, y_pool, y_test = train_test_split(
    X[target], obj[target], test_size=0.5, stratify=obj[target], random_state=0
)

# %%
# Trained on the source domain only
# ---------------------------------
# One head (the object) is enough here: a model trained on one domain has
# nothing to learn for the domain head.
params = dict(hidden=(128, 64), batch_size=32, random_state=0)
source_model = MultiHeadMLPClassifier(max_iter=40, **params).fit(X[source], obj[source])
print("product -> product (train):", round(source_model.score(X[source], obj[source]), 3))
print("product -> dslr (test):    ", round(source_model.score(X_test, y_test), 3))


# %%
# A few labelled target images
# ----------------------------
# For ``k`` images per class we compare
#
# * **warm start**: the source model with ``warm_start=True`` refitted on the
#   ``k * 10`` dslr images (its weights are the starting point, the optimizer
#   starts afresh);
# * **partial_fit**: the source model updated by ``partial_fit`` passes over
#   the same images (keeps the optimizer's state);
# * **dslr alone**: a new model trained on the few dslr images only.
def few_shot(k, seed):
    rng = np.random.RandomState(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(y_pool == c), k, replace=False) for c in np.unique(y_pool)]
    )
    Xk, yk = X_pool[idx], y_pool[idx]
    few = dict(max_iter=30, batch_size=10)

    warm = copy.deepcopy(source_model).set_params(warm_start=True, **few)
    warm.fit(Xk, yk)

    online = copy.deepcopy(source_model).set_params(batch_size=10)
    for _ in range(30):
        online.partial_fit(Xk, yk)

    alone = MultiHeadMLPClassifier(**{**params, **few, "random_state": seed}).fit(Xk, yk)
    return [m.score(X_test, y_test) for m in (warm, online, alone)]


shots = [1, 2, 5, 10]
scores = np.array([[few_shot(k, seed) for seed in range(3)] for k in shots]).mean(axis=1)
for k, (w, p, a) in zip(shots, scores):
    print(f"{k:2d} per class: warm start {w:.3f}  partial_fit {p:.3f}  dslr alone {a:.3f}")

# %%
# Starting from the source model is worth many labelled target images: with
# one or two images per class it is far ahead of a model that only sees the
# dslr images, which needs many more to catch up.
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.axhline(source_model.score(X_test, y_test), color="grey", ls="--",
           label="product only (no dslr label)")
for j, name in enumerate(["product, then warm start on dslr",
                          "product, then partial_fit on dslr", "dslr alone"]):
    ax.plot(shots, scores[:, j], "o-", label=name)
ax.set_xlabel("labelled dslr images per class")
ax.set_ylabel("object accuracy on dslr test images")
ax.set_ylim(0, 1)
ax.legend(fontsize="small", loc="lower right")
fig.tight_layout()
plt.show()
