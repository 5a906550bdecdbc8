"""Image-loading errors that name the file, for the host's ImageFolder-based datasets.

A corrupt or truncated image otherwise surfaces deep in a DataLoader worker as a bare PIL error
("image file is truncated") with no path; the user needs to know which file to fix.
"""

from typing import Any, Callable

from torch.utils.data import Dataset


class NamedImageLoader:
    def __init__(self, loader: Callable[[str], Any]):
        """Wraps an image loader so that its errors name the file (picklable for workers)."""
        self.loader = loader

    def __call__(self, path: str) -> Any:
        try:
            return self.loader(path)
        except Exception as err:
            raise OSError(f"cannot read image file {path!r}: {err}") from err


def name_unreadable_images(dataset: Dataset) -> Dataset:
    """Makes a torchvision folder dataset's loader name the file it fails on (in place)."""
    if hasattr(dataset, "loader") and not isinstance(dataset.loader, NamedImageLoader):
        dataset.loader = NamedImageLoader(dataset.loader)
    return dataset
