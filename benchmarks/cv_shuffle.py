"""Why every split of the package's data must shuffle: per-fold domain accuracy.

The loaders return rows sorted by domain, and scikit-learn's default
``cv=5`` for a 2-D ``y`` is an unshuffled ``KFold``: a test fold can then
hold one domain only (mostly unseen in its training part). This script
cross-validates one small two-head network both ways and prints the domain
head's accuracy on each fold::

    python benchmarks/cv_shuffle.py                                    # built-in data, 8x8
    python benchmarks/cv_shuffle.py --data ../shared/data/office31     # the photos, 32x32

The numbers are quoted in ``docs/own_images.rst``.
"""

import argparse
import warnings

from sklearn.model_selection import KFold, cross_validate

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.datasets import load_office31, load_office_digits
from skoffice31.metrics import head_accuracy_scorer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="Office-31 folder (default: the built-in data)")
    args = parser.parse_args()
    if args.data:
        X, y = load_office31(args.data, size=32, as_frame=True, return_X_y=True)
    else:
        X, y = load_office_digits(size=8, as_frame=True, return_X_y=True)
    warnings.simplefilter("ignore")
    for name, cv in (("cv=5 (unshuffled KFold)", 5),
                     ("KFold(5, shuffle=True, random_state=0)", KFold(5, shuffle=True,
                                                                       random_state=0))):
        clf = MultiHeadMLPClassifier(hidden=(32,), max_iter=30, random_state=0)
        res = cross_validate(clf, X, y, cv=cv,
                             scoring={"domain": head_accuracy_scorer("domain")})
        print(f"{name}: domain accuracy per fold {res['test_domain'].round(2).tolist()}")


if __name__ == "__main__":
    main()
