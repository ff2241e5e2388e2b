"""Image datasets with named heads (Office-31's ``domain`` and ``object``, or yours).

- :func:`load_office31` reads Office-31 (or any folder in its layout) from
  disk, with an on-disk cache of the decoded images;
- :func:`fetch_office31` downloads, verifies and loads Office-31 into the
  data home;
- :func:`load_image_folder` and :func:`load_image_table` read one's own
  images: an ImageFolder tree ``<class>/*.jpg`` (one head) or a CSV/TSV
  file ``path,<head1>,<head2>,...`` (any number of heads);
- :func:`load_office_digits` is a built-in stand-in for Office-31, made from
  scikit-learn's handwritten digits, that needs no files;
- :func:`get_data_home` / :func:`clear_data_home` locate / empty the folder
  used for downloads and caches (``SKOFFICE31_DATA`` or
  ``~/skoffice31_data``).

Problems that do not stop a load are reported as warnings of two classes:
:class:`SkippedFilesWarning` (files or folders left out, with their names on
the warning's ``files`` attribute) and :class:`CacheWarning` (the cache could
not be written, the data were loaded without it).
"""

from ._base import CacheWarning, SkippedFilesWarning, clear_data_home, get_data_home
from ._digits import load_office_digits
from ._folder import load_image_folder, load_image_table
from ._fetch import Office31FetchError, fetch_office31, verify_office31
from ._office31 import load_office31

__all__ = [
    "CacheWarning",
    "Office31FetchError",
    "SkippedFilesWarning",
    "clear_data_home",
    "fetch_office31",
    "get_data_home",
    "load_image_folder",
    "load_image_table",
    "load_office31",
    "load_office_digits",
    "verify_office31",
]
