"""Office-digits: a built-in, three-domain stand-in for Office-31."""

import numpy as np

from .._pixels import LUMA, normalize_size
from ._base import make_bunch

DOMAINS = ("dslr", "product", "webcam")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven",
               "eight", "nine")
# Share of each class's source digits that goes to each domain (disjoint).
_SHARES = {"product": 0.50, "webcam": 0.28, "dslr": 0.22}

DESCR = """\
Office-digits: a small built-in stand-in for Office-31
-------------------------------------------------------

This is NOT Office-31. It is a synthetic two-head image dataset made from
scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``:
1,797 8x8 greyscale images of 10 digits), so that examples, tests and the
command line run anywhere without downloading anything. It imitates the
*structure* of Office-31 (several domains showing the same object classes in
different photographic styles, two labels per image) but not its difficulty:
the objects are digits, the images are small and the styles are simple,
deterministic image operations. Results on it say nothing about Office-31
accuracy; use ``fetch_office31`` / ``load_office31`` for the real study.

Every source digit is used once: each class's digits are split (with a fixed
seed) into three disjoint groups, one per domain, each rendered in a style:

- ``product`` (like Office-31's amazon, 50% of the digits): clean, sharp,
  dark ink centred on a white background, little jitter.
- ``webcam`` (28%): rendered at a third of the resolution and upsampled,
  grey background with an uneven lighting gradient, low contrast,
  per-image brightness changes, Gaussian sensor noise, more jitter.
- ``dslr`` (22%): blurred (shallow depth of field), warm colour cast with a
  per-image tint, coloured ink, vignetting, light noise.

=================   ==============================================
Samples total       1,797 (product 898, webcam 504, dslr 395)
Heads               domain (3 classes), object (10 classes, "zero".."nine")
Features            width * height * channels, float32 in [0, 1]
=================   ==============================================

The rendering is deterministic: every call returns the same images.
"""


def _split_indices(labels, rng):
    """Split sample indices per class into the three domains."""
    out = {d: [] for d in DOMAINS}
    order = ("product", "webcam", "dslr")
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        idx = idx[rng.permutation(idx.size)]
        n_prod = int(round(_SHARES["product"] * idx.size))
        n_web = int(round(_SHARES["webcam"] * idx.size))
        cuts = {"product": idx[:n_prod], "webcam": idx[n_prod:n_prod + n_web],
                "dslr": idx[n_prod + n_web:]}
        for d in order:
            out[d].extend(cuts[d].tolist())
    return {d: np.sort(np.asarray(v, dtype=int)) for d, v in out.items()}


def _glyphs(src, size, rng, *, scale, shift, rotate, low_res=1):
    """Render 8x8 digits (0..1 ink) to ``size`` with random affine jitter."""
    from PIL import Image

    w, h = size
    rw, rh = max(4, w // low_res), max(4, h // low_res)
    out = np.empty((src.shape[0], h, w), dtype=np.float32)
    for i, g in enumerate(src):
        img = Image.fromarray(g.astype(np.float32), "F")
        # Upscale the 8x8 glyph smoothly, then place it with a random affine.
        img = img.resize((rw, rh), Image.Resampling.BICUBIC)
        s = rng.uniform(*scale)
        ang = np.deg2rad(rng.uniform(-rotate, rotate))
        dx, dy = rng.uniform(-shift, shift, size=2) * (rw / w)
        # Inverse map from output to input pixel coordinates about the centre.
        cx, cy = rw / 2, rh / 2
        ca, sa = np.cos(ang) / s, np.sin(ang) / s
        coeffs = (ca, sa, cx - ca * (cx + dx) - sa * (cy + dy),
                  -sa, ca, cy + sa * (cx + dx) - ca * (cy + dy))
        img = img.transform((rw, rh), Image.Transform.AFFINE, coeffs,
                            resample=Image.Resampling.BILINEAR, fillcolor=0.0)
        if low_res > 1:
            img = img.resize((w, h), Image.Resampling.NEAREST)
        out[i] = np.asarray(img)
    return np.clip(out, 0.0, 1.0)


def _render(domain, src, size, rng):
    """Render digits in the style of ``domain``; returns float (n, H, W, 3)."""
    from scipy.ndimage import gaussian_filter

    n = src.shape[0]
    w, h = size
    if domain == "product":
        a = _glyphs(src, size, rng, scale=(0.9, 1.0), shift=0.5, rotate=3)
        bg = np.ones((n, 1, 1, 3), np.float32)
        ink = np.broadcast_to(np.float32([0.08, 0.09, 0.16]), (n, 1, 1, 3))
        img = bg * (1 - a[..., None]) + ink * a[..., None]
    elif domain == "webcam":
        a = _glyphs(src, size, rng, scale=(0.75, 0.95), shift=max(1.0, w / 10),
                    rotate=12, low_res=3)
        yy = np.linspace(0, 1, h, dtype=np.float32)[None, :, None, None]
        tilt = rng.uniform(-0.15, 0.15, size=(n, 1, 1, 1)).astype(np.float32)
        base = rng.uniform(0.45, 0.62, size=(n, 1, 1, 1)).astype(np.float32)
        bg = np.repeat(base + tilt * (yy - 0.5), 3, axis=3)
        bg = bg * np.float32([1.0, 1.02, 1.06])  # cold white balance
        ink = np.float32(0.22)
        img = bg * (1 - 0.8 * a[..., None]) + ink * 0.8 * a[..., None]
        img = img + rng.normal(0, 0.06, size=img.shape).astype(np.float32)
    elif domain == "dslr":
        a = _glyphs(src, size, rng, scale=(0.85, 1.05), shift=max(1.0, w / 16),
                    rotate=8)
        a = gaussian_filter(a, sigma=(0, 0.05 * h, 0.05 * w))
        tint = rng.uniform(-0.06, 0.06, size=(n, 1, 1, 3)).astype(np.float32)
        bg = np.float32([0.86, 0.74, 0.58]) + tint
        ink = np.float32([0.45, 0.16, 0.10]) + tint / 2
        img = bg * (1 - a[..., None]) + ink * a[..., None]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((yy - (h - 1) / 2) / h) ** 2 + ((xx - (w - 1) / 2) / w) ** 2
        img = img * (1 - 0.9 * r2)[None, :, :, None]  # vignetting
        img = img + rng.normal(0, 0.015, size=img.shape).astype(np.float32)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(domain)
    return img


def load_office_digits(*, size=(32, 32), domains=None, mode="RGB",
                       return_X_y=False, as_frame=False, shuffle=False,
                       random_state=None):
    """Load Office-digits, the built-in stand-in for Office-31.

    A deterministic, multi-domain image dataset made in well under a second
    from scikit-learn's bundled handwritten digits: each digit is rendered in
    one of three photographic styles (``product``, ``webcam``, ``dslr``),
    imitating Office-31's amazon / webcam / dslr domains. It needs no
    download and no file outside the installed packages. It is a stand-in:
    it has the structure of Office-31 (two heads, ``domain`` and ``object``)
    but not its content or difficulty. See ``DESCR`` for the details.

    ================   ======================================
    Samples total      1,797 (product 898, webcam 504, dslr 395)
    Heads              domain (3 classes), object (10 classes)
    Features           ``width * height * channels``, float32 in [0, 1]
    ================   ======================================

    Parameters
    ----------
    size : int or tuple of (int, int), default=(32, 32)
        Output ``(width, height)``, at least 8x8.
    domains : str or list of str, default=None
        Domains to return, among ``"dslr"``, ``"product"``, ``"webcam"``;
        None returns all.
    mode : {"RGB", "L"}, default="RGB"
        Colour mode.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` and ``target`` are pandas DataFrames; the columns
        of ``target`` (``domain`` and ``object``) then name the heads of a
        model fitted on it.
    shuffle : bool, default=False
        Permute the rows. By default they are sorted by domain, so an
        unshuffled cross-validation tests on a domain it never trained on.
    random_state : int, RandomState instance or None, default=None
        Seed of the permutation when ``shuffle`` is True.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        The same form as :func:`load_office31`: ``data`` (float32 in
        ``[0, 1]``, shape ``(n, height * width * channels)``), ``images``
        (uint8, ``(n, height, width, channels)``), ``target`` (object array
        ``(n, 2)``: domain and object names), ``target_names`` (dict of
        sorted names per head; the lists are the same whichever ``domains``
        are returned), ``head_names`` (``("domain", "object")``),
        ``feature_names``,
        ``filenames`` (``"<domain>/<object>/digit_<index>"``, the index into
        ``sklearn.datasets.load_digits``), ``frame`` and ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True
        ``data`` (the flat pixels) and ``target`` (the two label columns),
        as described above.

    See Also
    --------
    load_office31, fetch_office31 : The real Office-31.

    Examples
    --------
    >>> from skoffice31.datasets import load_office_digits
    >>> ds = load_office_digits()
    >>> ds.data.shape, ds.head_names
    ((1797, 3072), ('domain', 'object'))
    """
    from sklearn.datasets import load_digits

    size = normalize_size(size)
    if size is None or min(size) < 8:
        raise ValueError(f"size must be at least (8, 8); got {size!r}.")
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L'; got {mode!r}.")
    if domains is None:
        selected = list(DOMAINS)
    else:
        selected = [domains] if isinstance(domains, str) else list(domains)
        unknown = [d for d in selected if d not in DOMAINS]
        if unknown:
            raise ValueError(
                f"Unknown domain(s) {unknown}; available: {list(DOMAINS)}.")
        selected = [d for d in DOMAINS if d in set(selected)]

    digits = load_digits()
    src = (digits.images / 16.0).astype(np.float32)
    labels = digits.target
    split = _split_indices(labels, np.random.RandomState(31))
    images, doms, objs, names = [], [], [], []
    for k, dom in enumerate(DOMAINS):
        idx = split[dom]
        # Render every domain (fixed seeds) so a subset is the same images.
        if dom not in selected:
            continue
        rng = np.random.RandomState(1000 + k)
        img = _render(dom, src[idx], size, rng)
        img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        if mode == "L":
            luma = img.astype(np.float32) @ LUMA
            img = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
        images.append(img)
        doms += [dom] * idx.size
        objs += [DIGIT_NAMES[t] for t in labels[idx]]
        names += [f"{dom}/{DIGIT_NAMES[t]}/digit_{i}" for i, t in
                  zip(idx, labels[idx])]
    images = np.concatenate(images)
    target_names = {
        "domain": np.asarray(sorted(DOMAINS), dtype=object),
        "object": np.asarray(sorted(DIGIT_NAMES), dtype=object),
    }
    return make_bunch(images, doms, objs, target_names, names, DESCR,
                      return_X_y=return_X_y, as_frame=as_frame, shuffle=shuffle,
                      random_state=random_state)
