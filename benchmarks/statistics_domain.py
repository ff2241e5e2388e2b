"""How much of the domain the 24 image statistics tell on their own (issue 12, stage 17).

Stage 17 of ``benchmarks/tune_recipe.py`` put :class:`skoffice31.ImageStatistics`
(8 statistics per colour channel: brightness, contrast, range, sharpness)
beside the tuned preset's 512 principal components. This script measures
what those features carry by themselves: a logistic regression on

- the 24 statistics (standardised),
- the 512 principal components of the standardised pixels (the tuned
  preset's other input),
- both together,

for the three domains, for dslr against webcam only (the pair the networks
confuse: the same objects in the same office, two cameras) and for the 31
objects. 5-fold shuffled cross-validation *inside the 80% training part* of
seed 0's split of the tuned preset (32x32 photos, no augmented copies); the
test part is never loaded into a fit or a score.

Run (from the repository root; about a minute)::

    python benchmarks/statistics_domain.py --data ../shared/data/office31

Results: ``benchmarks/results/statistics_domain.md``.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from skoffice31.study import HEADS, StudySettings, load_study_data
from skoffice31.study._results import preprocessing_line

OUT = Path(__file__).parent / "results"


def inputs(settings):
    """The three inputs: the statistics, the components, both (the tuned preset's steps)."""
    (_, union), = settings.preprocessing_steps()
    parts = dict(union.transformer_list)
    return {"24 image statistics": parts["statistics"],
            "512 principal components": parts["pixels"],
            "both (the tuned preset's input)": union}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Office-31 folder")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default=str(OUT / "statistics_domain.md"))
    args = parser.parse_args()
    settings = StudySettings.from_preset("tuned", statistics=True)
    data = load_study_data(settings, args.data)
    X, y = data.X[data.train], data.y[data.train]  # the training part only
    domain = y[:, HEADS.index("domain")]
    pair = np.isin(domain, ["dslr", "webcam"])
    tasks = {"3 domains": (X, domain), "dslr vs webcam": (X[pair], domain[pair]),
             "31 objects": (X, y[:, HEADS.index("object")])}
    rows = []
    t0 = time.perf_counter()
    for name, features in inputs(settings).items():
        cells = []
        for task, (Xt, yt) in tasks.items():
            model = make_pipeline(features, LogisticRegression(C=1.0, max_iter=2000))
            cv = StratifiedKFold(5, shuffle=True, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores = cross_val_score(model, Xt, yt, cv=cv, n_jobs=args.n_jobs)
            cells.append(f"{scores.mean():.3f} ± {scores.std(ddof=1):.3f}")
            print(f"{name}, {task}: {cells[-1]}", flush=True)
        rows.append((name, cells))
    seconds = time.perf_counter() - t0
    majority = {task: float(np.max(np.unique(yt, return_counts=True)[1]) / len(yt))
                for task, (_, yt) in tasks.items()}
    lines = [
        "# What the image statistics tell on their own", "",
        f"`python benchmarks/statistics_domain.py --data <office31>`; {len(X)} training "
        f"photos of seed 0's split at {settings.image_size(True)[0]}x"
        f"{settings.image_size(True)[1]} (no augmented copies), of which {int(pair.sum())} "
        "dslr or webcam; logistic regression (C=1) on each input, 5-fold shuffled "
        "stratified CV inside the training part (mean ± std over the folds); "
        f"{seconds:.0f} s.", "",
        f"Inputs: {preprocessing_line(settings.preprocessing_steps())}.", "",
        "| input | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
        *(f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows),
        "| majority class | " + " | ".join(f"{majority[t]:.3f}" for t in tasks) + " |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
