"""
Transfer to a new domain: fine-tuning, frozen layers, an adversarial head
=========================================================================

A model trained on clean product shots (the built-in dataset's ``product``
style, standing in for Office-31's *amazon*) does much worse on DSLR photos of
the same objects, and labelling many photos of each new domain is expensive.
This example compares, on the built-in data, the ways
:mod:`skoffice31.transfer` trains for the ``dslr`` target from ``k``
labelled target images per class:

* **source only** and **target only**;
* **fine-tune all** layers of the source model (``warm_start=True``) or only
  its **output** layer (``n_frozen_layers`` freezes the trunk);
* **pooled**: source and the labelled target images together;
* **adversarial**: a two-head network (object and domain) trained on every
  image, the object label missing (``None``) on the unlabelled target
  images, and the domain head's gradient reversed into the trunk
  (``adversarial_heads``), which pushes the trunk towards features that do
  not tell the domains apart.

Then we look at those features (``embed`` + PCA). The real Office-31 table is
on the documentation's *Transfer between domains* page.
"""

# %%
# The methods on one task
# -----------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skoffice31.transfer import (
    default_estimator,
    format_transfer_table,
    load_transfer_data,
    make_features,
    run_transfer,
    summarize_transfer,
)

warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed numbers of epochs

data = load_transfer_data(size=16)  # the built-in data
print(data.description)
methods = ["source only", "target only", "fine-tune all", "fine-tune output", "pooled",
           "adversarial"]
shots = [0, 1, 3]
rows = list(run_transfer(data.X, data.domains, data.y, tasks=[("product", "dslr")],
                         shots=shots, seeds=2, methods=methods,
                         estimator=default_estimator(max_iter=15), few_max_iter=60))
summary = summarize_transfer(rows)
print(format_transfer_table(summary))

# %%
# Accuracy against the number of labelled target images
# -----------------------------------------------------
# Methods that need labelled target images start at ``k = 1``.
fig, ax = plt.subplots(figsize=(6, 3.8))
for method in methods:
    pts = [(e["k"], e["mean"], e["std"]) for e in summary if e["method"] == method]
    ks, means, stds = zip(*pts)
    ax.errorbar(ks, means, yerr=stds, marker="o", capsize=2, label=method)
ax.set_xticks(shots)
ax.set_xlabel("labelled dslr images per class")
ax.set_ylabel("object accuracy on the other dslr images")
ax.set_title("product -> dslr, built-in data (mean ± std over 2 seeds)")
ax.legend(fontsize="small")
fig.tight_layout()

# %%
# Do the domains overlap in the network's features?
# -------------------------------------------------
# The last hidden layer of a source-only network and of the adversarial one
# (:meth:`~skoffice31.MultiHeadMLPClassifier.embed`), projected on two
# principal components. The adversarial network was trained so that its
# domain head cannot separate the two domains from these features.
s, t = data.domains == "product", data.domains == "dslr"
features = make_features().fit(np.concatenate([data.X[s], data.X[t]]))
Xs, Xt = features.transform(data.X[s]), features.transform(data.X[t])
X_both = np.concatenate([Xs, Xt])
domain = np.array(["product"] * len(Xs) + ["dslr"] * len(Xt), dtype=object)
obj = np.concatenate([data.y[s], np.full(len(Xt), None, dtype=object)])  # no target label

source_only = default_estimator(max_iter=15, random_state=0).fit(Xs, data.y[s])
adversarial = default_estimator(max_iter=15, random_state=0, adversarial_heads={0: 1.0},
                                adversarial_schedule="dann")
adversarial.fit(X_both, np.column_stack([domain, obj]))

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, (name, model) in zip(axes, [("source only", source_only),
                                    ("adversarial", adversarial)]):
    Z = PCA(2, random_state=0).fit_transform(model.embed(X_both))
    for d, colour in (("product", "tab:blue"), ("dslr", "tab:orange")):
        ax.scatter(*Z[domain == d].T, s=4, alpha=0.5, color=colour, label=d)
    ax.set_title(f"{name}: trunk features, PCA")
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].legend(markerscale=3)
fig.tight_layout()
plt.show()
