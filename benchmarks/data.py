"""The benchmarks' data: CIFAR tarballs of the project's shared data, checked against their
sha256 and extracted once, and deterministic per-class subsets (folders of symlinks) that the
host's ImageFolder reads."""

import hashlib
import os
import shutil
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks.profiles import Profile
from solo_scaca.data.clutter import MAX_SIDE, MIN_SIDE
from solo_scaca.data.layout import is_image

REPO = Path(__file__).resolve().parent.parent
CIFAR10_SHA256 = {
    "train.tar.gz": "bb033266dbb26aa71223ff120c0df4e7d3943dbd93b9e65984876854c6234931",
    "test.tar.gz": "7c54dfb40a3e53a212021475ac995e181b0a5f595c1fca0bbfa89c5bd6dda8f6",
}
# the sha256 of each dataset's tarballs; CIFAR-100 is layout-ready (train/<class>/,
# test/<class>/ tarballs or folders) but has no copy here to pin its checksums from
CHECKSUMS: Dict[str, Dict[str, str]] = {"cifar10": CIFAR10_SHA256, "cifar100": {}}
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def shared_data_dir() -> Path:
    """The project's shared data folder: ``$SOLO_SCACA_SHARED_DATA``, else ``../shared/data``
    beside the repository root."""
    return Path(os.environ.get("SOLO_SCACA_SHARED_DATA", REPO.parent / "shared" / "data"))


# CIFAR-10's; another dataset's (--dataset) is its sibling folder
DEFAULT_DATA_ROOT = Path("~/.cache/solo-scaca/cifar10").expanduser()
DEFAULT_WORK_DIR = Path("~/.cache/solo-scaca/benchmark-runs").expanduser()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_cifar(data_root: Path, source: Path,
                  checksums: Dict[str, str] = CIFAR10_SHA256) -> Path:
    """``data_root/{train,test}``: extracted once from ``source/{train,test}.tar.gz`` after their
    sha256 is checked (said when ``checksums`` has none for it). A split folder that exists is
    used as it is (extraction goes to a temporary folder that is renamed only when complete)."""
    data_root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        if (data_root / split).is_dir():
            continue
        tarball = source / f"{split}.tar.gz"
        if not tarball.exists():
            raise FileNotFoundError(
                f"{data_root / split} is missing and so is {tarball} to extract it from: pass "
                f"--cifar-dir (the folder of the dataset's train.tar.gz and test.tar.gz) or set "
                f"SOLO_SCACA_SHARED_DATA to the project's shared/data folder")
        if tarball.name in checksums:
            print(f"[accuracy] checking sha256 of {tarball}", flush=True)
            got = sha256(tarball)
            if got != checksums[tarball.name]:
                raise ValueError(f"{tarball}: sha256 {got} differs from the expected "
                                 f"{checksums[tarball.name]}")
        else:
            print(f"[accuracy] no pinned sha256 for {tarball}: not checked", flush=True)
        tmp = data_root / f".extracting-{split}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        print(f"[accuracy] extracting {tarball} into {data_root}", flush=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / split).is_dir():
            raise ValueError(f"{tarball} has no top-level {split}/ folder")
        (tmp / split).rename(data_root / split)
        shutil.rmtree(tmp)
    return data_root


def sample_cifar(source: Path, dest: Path, train_per_class: int, test_per_class: int,
                 checksums: Dict[str, str] = CIFAR10_SHA256) -> Path:
    """A small CIFAR-10 data root (``dest/{train,test}/<class>/``): the first images per class
    of each tarball, after its sha256 is checked. For tests: no full extraction."""
    wanted = {"train": train_per_class, "test": test_per_class}
    for split, per_class in wanted.items():
        tarball = source / f"{split}.tar.gz"
        got = sha256(tarball)
        if got != checksums[tarball.name]:
            raise ValueError(f"{tarball}: sha256 {got} differs from the expected "
                             f"{checksums[tarball.name]}")
        counts: Dict[str, int] = {}
        with tarfile.open(tarball) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 3 or parts[0] != split:
                    continue
                if counts.get(parts[1], 0) >= per_class:
                    continue
                counts[parts[1]] = counts.get(parts[1], 0) + 1
                tar.extract(member, dest, filter="data")
    return dest


def class_subset(split_dir: Path, per_class: Optional[int], dest: Path) -> Path:
    """A folder of symlinks to the first ``per_class`` images (sorted names) of every class of
    ``split_dir``: stratified and deterministic. ``per_class=None`` returns ``split_dir``."""
    if per_class is None:
        return split_dir
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{split_dir} has no class folders")
    for cls in classes:
        files = sorted(f for f in cls.iterdir() if is_image(f.name))
        if len(files) < per_class:
            raise ValueError(f"{cls} has {len(files)} images, fewer than the {per_class} per "
                             f"class the profile asks for")
        (tmp / cls.name).mkdir(parents=True)
        for f in files[:per_class]:
            (tmp / cls.name / f.name).symlink_to(f.resolve())
    tmp.rename(dest)
    return dest


def profile_data(profile: Profile, data_root: Path, source: Path,
                 dataset: str = "cifar10") -> Tuple[Path, Path]:
    """The training and test folders of a profile: the dataset extracted once from ``source``
    (``prepare_cifar``), then its per-class subsets (``class_subset``)."""
    prepare_cifar(data_root, source, CHECKSUMS[dataset])
    subsets = data_root / "subsets"
    return (class_subset(data_root / "train", profile.train_per_class,
                         subsets / f"train-{profile.train_per_class}pc"),
            class_subset(data_root / "test", profile.test_per_class,
                         subsets / f"test-{profile.test_per_class}pc"))


def clutter_root(data_root: Path, train_per_class: Optional[int],
                 test_per_class: Optional[int],
                 sides: Tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> Path:
    """Where a clutter set of these sizes (and object sides, named when not the data command's
    default) lives: beside the CIFAR-10 data root."""
    name = f"cifar10-clutter-{train_per_class}pc-{test_per_class}pc"
    if tuple(sides) != (MIN_SIDE, MAX_SIDE):
        name += f"-{sides[0]}-{sides[1]}px"
    return data_root.parent / name


def default_clutter_root() -> Path:
    """The clutter campaign's cpu profile set (its sizes and object sides)."""
    from benchmarks.profiles import CLUTTER

    p = CLUTTER["cpu"]
    return clutter_root(DEFAULT_DATA_ROOT, p.train_per_class, p.test_per_class,
                        (p.clutter_min_side, p.clutter_max_side))


def clutter_picks(root: Path, count: int) -> List[dict]:
    """The ``boxes.csv`` rows of the first ``count`` test images of a clutter set, classes
    interleaved (the same objects in any set generated from the same source)."""
    from solo_scaca.data.layout import read_boxes

    by_class: Dict[int, List[dict]] = {}
    for r in read_boxes(root):
        if r["split"] == "test":
            by_class.setdefault(r["label"], []).append(r)
    return [r for group in zip(*by_class.values()) for r in group][:count]


def clutter_images(root: Path, count: int, size: int) -> Tuple["torch.Tensor", "torch.Tensor",
                                                              "torch.Tensor"]:
    """The first ``count`` test images of a clutter set (``clutter_picks``), with boxes and
    labels."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    picked = clutter_picks(root, count)
    opened = [Image.open(root / r["path"]).convert("RGB") for r in picked]
    images = torch.stack([to_tensor(image.resize((size, size))) for image in opened])
    scales = torch.tensor([[size / image.width, size / image.height] * 2 for image in opened])
    boxes = torch.tensor([[r["x0"], r["y0"], r["x1"], r["y1"]] for r in picked]) * scales
    return images, boxes.float(), torch.tensor([r["label"] for r in picked])
