"""One device call answers the question at a real budget: the host's DALI pipeline against its
torchvision loader, the add-on's GPU overhead, and a campaign on the clutter set and on
CIFAR-10, all inside a deadline that the command enforces itself.

    python3 -m benchmarks device --prepare      # here, once: builds .device/, prints the calls
    python3 -m benchmarks device --out DIR --deadline 480                 # on the device
    python3 -m benchmarks device --tiny --out DIR --data-root D --work-dir W   # CPU: the tests

Stages, in this order; each writes its result files under ``--out`` as soon as it finishes
(and ``--archive`` gets a tar.gz of ``--out`` after each), so what finished survives a cut:

1. ``throughput``: training images/s of one swav run (Wide ResNet-28-2, CIFAR-10 at 32 px,
   batch 256, a few hundred steps after a warm-up) fed by the host's torchvision
   ``image_folder`` loader, then by the host's DALI pipeline (GPU decoding and augmentation;
   ``dali.device=cpu`` without a GPU), each loader given the whole machine's cores; the loader
   alone; the GPU's busy share while training (``nvidia-smi``, else ``torch.cuda.utilization``;
   ``n/a`` without a GPU). ``throughput.md/.csv/.json``.
2. ``overhead``: swav_scaca against swav, step time and memory, interleaved (the overhead
   benchmark's measurement, ``benchmarks/step_cost.py``: same batch and weights, median of
   repeats).
   ``overhead.md/.csv/.json``.
3. ``campaign``: the arms (``swav``, ``swav_scaca`` with ``--ca-overrides``, its
   ``ca_mask=uniform`` control with the same overrides, ``swav_lewel``) on the clutter set and
   on the whole CIFAR-10, and the published positive control (``byol_lewel``, the LEWEL paper's
   LEWEL_B) beside ``byol`` on the clutter set, all side by side on the one GPU as separate
   processes, for as many epochs as fit (``sizing.json`` holds the formula and its inputs), each
   evaluated with k-NN (``benchmarks.runs.evaluate``: also the host's linear model on cached
   features) and, on the clutter set, mask-in-box (swav_scaca's masks, LEWEL's alignment maps).
   ``campaign_runs/*.json``, ``campaign.md/.csv``. The clutter ``swav`` run then runs the
   incentive check (``benchmarks/incentive.py``) on its checkpoint while the slower arms
   finish, as time allows: two crops of one canvas (``incentive.md``), then the second crop from
   another canvas of the same object (``incentive-paired.md``, a second clutter set of the
   test objects on other backgrounds).

The deadline counts from the command's start: no stage, process or run starts without the time
it needs, and every child still running at ``deadline - margin`` is killed (process group,
SIGTERM then SIGKILL); ``summary.md`` (printed at the end) says what finished and ends with
either ``finished`` or ``stopped at the deadline``. A stage whose result file exists in
``--out`` is not run again.
"""

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks import device_payload as payload
from benchmarks.common import metadata
# the controls' augmentation (the clutter cpu profile's crops differ: sized for 16 CPU epochs,
# where a GPU budget trains far longer)
from benchmarks.profiles import SPATIAL_AUGMENTATION

REPO = payload.REPO
STAGES = ("throughput", "overhead", "campaign")
LOADERS = ("image_folder", "dali")
DATASETS = ("clutter", "cifar10")
# arm -> (method, host method whose config it starts from, overrides besides the profile's);
# swav_scaca and its control also get --ca-overrides ("the best CA objective")
ARMS: "OrderedDict[str, Tuple[str, str, Tuple[str, ...]]]" = OrderedDict([
    ("swav", ("swav", "swav", ())),
    ("swav_scaca", ("swav_scaca", "swav", ())),
    ("ca_mask=uniform", ("swav_scaca", "swav", ("method_kwargs.ca_mask=uniform",))),
    ("swav_lewel", ("swav_lewel", "swav", ())),
    ("byol", ("byol", "byol", ())),
    ("byol_lewel", ("byol_lewel", "byol", ())),
])
# the positive control and its base run where place can pay only: not on CIFAR-10
CLUTTER_ONLY = ("byol", "byol_lewel")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What sizes one ``device`` call besides the deadline."""

    profile: Any                 # benchmarks.runs.Profile of the campaign (epochs: sized)
    warmup_steps: int            # throughput: steps before the clock starts
    timed_steps: int             # throughput: steps timed
    loader_batches: int          # throughput: batches of the loader alone
    overhead_setting: str        # a setting of benchmarks.step_cost
    overhead_repeats: int
    spatial_images: int          # clutter test images for mask-in-box
    clutter_per_class: Tuple[int, int]   # (train, test) objects per class
    cifar_per_class: Tuple[Optional[int], Optional[int]]  # None: the whole split
    max_epochs: int              # the campaign's cap per dataset
    fixed_epochs: Optional[int]  # tiny: no sizing
    margin_s: float              # kill children this long before the deadline
    min_stage_s: float           # a stage or child starts only with this much time left
    incentive_steps: int         # the incentive check's optimisation steps
    incentive_s: float           # each incentive table starts only with this much time left


def _profiles():
    from benchmarks.runs import Profile

    gpu = Profile(
        why=("Wide ResNet-28-2 at CIFAR's 32 px (8x8 map), batch 256 (lr 0.15 x 256/256, "
             "LARS), 100 prototypes, no queue, prototypes frozen and the CA weight ramped for "
             "the first epoch, the controls' milder augmentation, mixed precision: the "
             "controls' gpu profile, read by the host's DALI pipeline on the GPU; epochs "
             "sized per dataset from the throughput and overhead stages (sizing.json). "
             "Evaluation: k-NN 20/200 and the host's linear model (10 epochs) on cached "
             "features of the split's training and test images."),
        seeds=(0,), epochs=1, train_per_class=None, test_per_class=None, crop_size=32,
        batch_size=256, lr=0.15, warmup_epochs=1, num_prototypes=100, queue_size=0,
        epoch_queue_starts=0, freeze_prototypes_epochs=1, data_format="dali", num_workers=2,
        linear_epochs=10, linear_batch_size=1024, eval_batch_size=1024,
        hydra_overrides=(*SPATIAL_AUGMENTATION, "precision=16-mixed"),
        backbone="wide_resnet28w2")
    tiny = dataclasses.replace(
        gpu, why="CPU check of every stage's code path: the numbers mean nothing.",
        batch_size=8, num_prototypes=10, warmup_epochs=0, freeze_prototypes_epochs=0,
        num_workers=1, linear_epochs=2, linear_batch_size=16, eval_batch_size=64,
        hydra_overrides=SPATIAL_AUGMENTATION)
    return {
        "gpu": Sizes(gpu, warmup_steps=20, timed_steps=200, loader_batches=100,
                     overhead_setting="wide_resnet28w2-32px-b256", overhead_repeats=20,
                     spatial_images=512, clutter_per_class=(500, 1000),
                     cifar_per_class=(None, None), max_epochs=60, fixed_epochs=None,
                     margin_s=20.0, min_stage_s=30.0, incentive_steps=200,
                     incentive_s=150.0),
        "tiny": Sizes(tiny, warmup_steps=1, timed_steps=2, loader_batches=3,
                      overhead_setting="wide_resnet28w2-32px", overhead_repeats=2,
                      spatial_images=8, clutter_per_class=(4, 2), cifar_per_class=(4, 2),
                      max_epochs=1, fixed_epochs=1, margin_s=3.0, min_stage_s=3.0,
                      incentive_steps=2, incentive_s=0.0),
    }


# ------------------------------------------------------------------------------- the deadline
class Deadline:
    """Seconds from ``start``; ``left()`` is the time before children must be gone."""

    def __init__(self, seconds: float, margin: float, start: Optional[float] = None):
        self.seconds, self.margin = seconds, margin
        self.start = time.monotonic() if start is None else start

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.margin - self.elapsed()


def kill_groups(procs: Sequence[subprocess.Popen], grace: float = 2.0) -> None:
    """SIGTERM to every child's process group (its loader workers too), at once; SIGKILL to
    those still there after ``grace`` s (Lightning catches SIGTERM and trains on)."""
    def signal_all(sig):
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    signal_all(signal.SIGTERM)
    end = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    signal_all(signal.SIGKILL)
    for proc in procs:
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            pass


def run_children(children: Dict[str, List[str]], logs: Path, deadline: Deadline,
                 poll_s: float = 0.5, on_exit=None) -> Dict[str, str]:
    """Starts every command side by side (own process groups, output to ``logs/<name>.log``),
    waits, and kills those still running when the deadline comes. Returns per name ``done``,
    ``failed (exit N)`` or ``stopped at the deadline``; ``on_exit(name, status)`` is called as
    each ends."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name, argv in children.items():
        with (logs / f"{_slug(name)}.log").open("w") as log:
            procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           cwd=REPO, start_new_session=True)
    status: Dict[str, str] = {}
    while len(status) < len(procs):
        for name, proc in procs.items():
            if name not in status and proc.poll() is not None:
                status[name] = "done" if proc.returncode == 0 else (
                    f"failed (exit {proc.returncode}, log {logs / (_slug(name) + '.log')})")
                if on_exit:
                    on_exit(name, status[name])
        if len(status) < len(procs) and deadline.left() <= 0:
            running = [name for name in procs if name not in status]
            kill_groups([procs[name] for name in running])
            for name in running:
                status[name] = "stopped at the deadline"
                if on_exit:
                    on_exit(name, status[name])
            break
        time.sleep(poll_s)
    return status


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("_")


# ---------------------------------------------------------------------------- GPU busy share
class GpuSampler(threading.Thread):
    """Samples the GPU's busy share (percent of time a kernel ran) and memory in use every
    ``every`` s: ``nvidia-smi``, else ``torch.cuda.utilization`` (NVML); nothing without CUDA."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.samples, self.memory = every, [], []
        self.stop_event = threading.Event()

    @staticmethod
    def read() -> Optional[Tuple[float, float]]:
        """(busy %, MiB in use) of GPU 0, or None without one."""
        import torch

        if not torch.cuda.is_available():
            return None
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=5).stdout
            busy, mem = (float(v) for v in out.strip().split(","))
            return busy, mem
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        try:  # no nvidia-smi: NVML through torch (this process's CUDA context)
            free, total = torch.cuda.mem_get_info()
            return float(torch.cuda.utilization()), (total - free) / 2**20
        except Exception:
            return None

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            sample = self.read()
            if sample is not None:
                self.samples.append(sample[0])
                self.memory.append(sample[1])

    def stop(self) -> Dict[str, Any]:
        self.stop_event.set()
        if self.is_alive():
            self.join()
        if not self.samples:
            return {"gpu_busy": "n/a", "gpu_memory_MiB": "n/a", "gpu_samples": 0}
        return {"gpu_busy": sum(self.samples) / len(self.samples) / 100.0,
                "gpu_memory_MiB": max(self.memory), "gpu_samples": len(self.samples)}


# --------------------------------------------------------------------- stage 1: throughput
def measure_throughput(loader: str, sizes: Sizes, train_path: Path, work_dir: Path,
                       workers: int) -> Dict[str, Any]:
    """One swav run of the campaign's settings fed by ``loader``: training images/s over
    ``timed_steps`` after ``warmup_steps`` (with the GPU's busy share), then the loader alone."""
    started = time.time()
    import torch
    from lightning.pytorch import Callback, Trainer
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS
    from solo.utils.misc import make_contiguous

    from benchmarks import runs
    from solo_scaca.cli.common import prepare_cfg
    from solo_scaca.cli.pretrain import _train_data
    from solo_scaca.host.cifar_folders import parse_cfg_for_folders

    profile = dataclasses.replace(sizes.profile, data_format=loader, num_workers=workers)
    cfg = prepare_cfg(runs.pretrain_config(profile, "swav", 0, train_path, work_dir, loader),
                      parse_cfg_for_folders(parse_cfg))
    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    data = _train_data(cfg)
    cuda = torch.cuda.is_available()
    sampler = GpuSampler()

    class Clock(Callback):
        first = t0 = t1 = None

        def on_train_batch_start(self, trainer, *args):
            if self.first is None:
                self.first = time.time()
            if trainer.global_step == sizes.warmup_steps and self.t0 is None:
                if cuda:
                    torch.cuda.synchronize()
                self.t0 = time.perf_counter()
                sampler.start()

        def on_train_end(self, *args):
            if cuda:
                torch.cuda.synchronize()
            self.t1 = time.perf_counter()

    clock = Clock()
    trainer = Trainer(accelerator=cfg.accelerator, devices=1, precision=cfg.precision,
                      max_steps=sizes.warmup_steps + sizes.timed_steps, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, callbacks=[clock],
                      default_root_dir=str(work_dir))
    trainer.fit(model, **data)
    busy = sampler.stop()
    train_ips = cfg.optimizer.batch_size * sizes.timed_steps / (clock.t1 - clock.t0)

    source = data["datamodule"].train_dataloader() if "datamodule" in data else data[
        "train_dataloaders"]
    seen, t0 = 0, None
    while seen < sizes.loader_batches + 1:  # the first batch starts the workers: not timed
        for batch in source:
            if t0 is None:
                t0 = time.perf_counter()
            else:
                seen += 1
                if seen == sizes.loader_batches + 1:
                    break
    if cuda:
        torch.cuda.synchronize()
    loader_ips = cfg.optimizer.batch_size * (seen - 1) / (time.perf_counter() - t0)
    return {"loader": loader, "dali_device": cfg.dali.device if loader == "dali" else "",
            "workers": workers, "batch": cfg.optimizer.batch_size, "px": profile.crop_size,
            "precision": str(cfg.precision), "timed_steps": sizes.timed_steps,
            "train_images_per_s": train_ips, "loader_images_per_s": loader_ips, **busy,
            "setup_s": clock.first - started, "device": _device_name(),
            "train_images": len(source) * cfg.optimizer.batch_size if hasattr(source, "__len__")
            else ""}


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def dali_available() -> Tuple[bool, str]:
    try:
        import nvidia.dali  # noqa: F401

        return True, f"DALI {nvidia.dali.__version__}"
    except ImportError as err:
        return False, f"DALI does not import: {err}"


# ---------------------------------------------------------------------- stage 3: campaign
FORMULA = (
    "For the loader L (DALI when it ran and trained at least as fast, else torchvision), with "
    "t its training images/s for one run, b the GPU's busy share then (1 without a GPU), l the "
    "loader's own images/s, n runs side by side and r swav_scaca's step-time ratio over swav: "
    "aggregate = min(t / b, n * t, l) (the GPU saturated, n single runs, the loader); "
    "per_run = SAFETY * aggregate / n / r (every arm at the slowest arm's pace); "
    "epochs_d = floor((T - S - E_d) * per_run / N_d), at most max_epochs; T the seconds left, "
    "S the start-up measured in the throughput stage times STARTUP_FACTOR (n processes start "
    "at once), E_d = EVAL_FIXED_S + (N_d + M_d) / EVAL_IMAGES_PER_S the evaluation "
    "(estimates), N_d and M_d the dataset's training and test images.")


def sizing(throughput: Dict[str, Dict], overhead: Optional[Dict], runs_side_by_side: int,
           train_images: Dict[str, int], test_images: Dict[str, int], seconds_left: float,
           sizes: Sizes, fixed: Optional[int] = None) -> Dict[str, Any]:
    """The campaign's loader and epochs per dataset, from the measured throughput and overhead
    (``FORMULA``)."""
    fixed_epochs = fixed if fixed is not None else sizes.fixed_epochs
    ok = {k: v for k, v in throughput.items() if isinstance(v.get("train_images_per_s"), float)}
    if not ok:
        return {"loader": None, "epochs": {d: 0 for d in train_images},
                "why": "no loader's throughput was measured: nothing to size the runs from"}
    loader = max(ok, key=lambda k: (ok[k]["train_images_per_s"], k == "dali"))
    m = ok[loader]
    t, l_ips = m["train_images_per_s"], m["loader_images_per_s"]
    b = m["gpu_busy"] if isinstance(m["gpu_busy"], float) and m["gpu_busy"] > 0 else 1.0
    r = overhead["step_ratio"] if overhead and overhead.get("step_ratio") else DEFAULT_RATIO
    n = runs_side_by_side
    aggregate = min(t / b, n * t, l_ips)
    per_run = SAFETY * aggregate / n / max(r, 1.0)
    startup = m["startup_s"] * STARTUP_FACTOR
    epochs, evals = {}, {}
    for d, n_train in train_images.items():
        evals[d] = EVAL_FIXED_S + (n_train + test_images[d]) / EVAL_IMAGES_PER_S
        budget = seconds_left - startup - evals[d]
        epochs[d] = max(0, min(sizes.max_epochs, int(budget * per_run / max(1, n_train))))
        if fixed_epochs is not None:
            epochs[d] = fixed_epochs
    return {"loader": loader, "epochs": epochs, "train_images_per_s_one_run": t,
            "gpu_busy_one_run": m["gpu_busy"], "loader_images_per_s": l_ips,
            "step_ratio": r, "runs_side_by_side": n, "aggregate_images_per_s": aggregate,
            "per_run_images_per_s": per_run, "startup_s": startup, "eval_s": evals,
            "seconds_left": seconds_left, "safety": SAFETY, "train_images": train_images,
            "test_images": test_images, "fixed_epochs": fixed_epochs,
            "formula": FORMULA}


SAFETY = 0.7              # Lightning's per-epoch overhead, contention between processes
STARTUP_FACTOR = 1.5      # n processes importing and building loaders at once
EVAL_FIXED_S = 30.0       # model load, loader workers, linear classifier (estimate)
EVAL_IMAGES_PER_S = 5000  # k-NN feature extraction with 2 workers per run (estimate)
DEFAULT_RATIO = 1.4       # swav_scaca / swav step time when the overhead stage did not run


def arm_overrides(arm: str, ca_overrides: Sequence[str]) -> List[str]:
    method, _, extra = ARMS[arm]
    return [*extra, *(ca_overrides if method == "swav_scaca" else ())]


def campaign_names(datasets: Sequence[str], arms: Sequence[str]) -> List[Tuple[str, str]]:
    """The (dataset, arm) runs of the campaign: every arm on every dataset, except
    ``CLUTTER_ONLY`` arms on CIFAR-10."""
    return [(d, a) for d in datasets for a in arms if d == "clutter" or a not in CLUTTER_ONLY]


def spatial_metrics(ckpt: str, method: str, root: Path, count: int,
                    batch_size: int) -> Dict[str, float]:
    """The clutter campaign's ``mask_scores`` on the first ``count`` clutter test images:
    swav_scaca's masks with the partners its pairing picks in batches of ``batch_size``
    (``batch_masks``), or a LEWEL method's alignment maps (``lewel_maps``), on the GPU."""
    import torch
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from benchmarks import data
    from benchmarks.clutter import mask_scores
    from solo_scaca.evaluation.mask_view import batch_masks, load_method

    images, boxes, _ = data.clutter_images(root, count, 32)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = ((images - mean) / std).to(device)  # data.dataset=custom: ImageNet's statistics
    model = load_method(ckpt).to(device)
    batch_size = max(2, min(batch_size, len(images)))
    if method.endswith("_lewel"):
        from solo_scaca.addon.lewel import lewel_maps

        return mask_scores(torch.cat([lewel_maps(model, images[i:i + batch_size])
                                      for i in range(0, len(images), batch_size)]), boxes)
    return mask_scores(torch.cat([batch_masks(model, images[i:i + batch_size]).masks
                                  for i in range(0, len(images) - 1, batch_size)
                                  if len(images[i:i + batch_size]) > 1]), boxes)


def campaign_run(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One (dataset, arm) of the campaign, in its own process: pretraining and k-NN/linear
    through ``benchmarks.runs.run_one`` from the clutter campaign's config of its host method,
    then mask-in-box on the clutter set."""
    from benchmarks import runs
    from benchmarks.campaign import config_of, method_overrides

    sizes = _profiles()[spec["size"]]
    epochs = spec["epochs"]
    profile = dataclasses.replace(
        sizes.profile, epochs=epochs, data_format=spec["loader"],
        num_workers=spec["workers"], warmup_epochs=min(sizes.profile.warmup_epochs, epochs - 1),
        freeze_prototypes_epochs=min(sizes.profile.freeze_prototypes_epochs, epochs - 1))
    method, host, _ = ARMS[spec["arm"]]
    overrides = arm_overrides(spec["arm"], spec["ca_overrides"])
    run_file = Path(spec["run_file"])
    result = runs.run_one(
        f"device-{spec['dataset']}", profile, method, 0, Path(spec["train"]),
        Path(spec["test"]), Path(spec["work_dir"]) / spec["dataset"] / _slug(spec["arm"]),
        run_file, {"benchmark": "device", "dataset": spec["dataset"], "arm": spec["arm"],
                   "overrides": overrides, "epochs": epochs},
        config=config_of(host), base_overrides=[*method_overrides(profile, host), *overrides])
    if spec["dataset"] == "clutter" and (method == "swav_scaca" or method.endswith("_lewel")):
        result.update(spatial_metrics(result["checkpoint"], method, Path(spec["root"]),
                                      sizes.spatial_images, profile.batch_size))
        runs.write_run_file(run_file, result)
    if spec["dataset"] == "clutter" and spec["arm"] == "swav":
        incentive_check(result["checkpoint"], spec, sizes)
    return result


def incentive_check(ckpt: str, spec: Dict[str, Any], sizes: Sizes) -> None:
    """The incentive check on the clutter swav checkpoint: ``incentive.md`` (two crops of one
    canvas), then ``incentive-paired.md`` (the second crop from the pair set's canvas of the same
    object); each only with ``incentive_s`` left before the deadline."""
    from benchmarks import incentive

    for pair in ("", spec["pair_root"]):
        if time.time() > spec["deadline_at"] - sizes.incentive_s:
            payload.say(f"incentive check{' (paired)' if pair else ''}: skipped, the deadline")
            continue
        try:  # the run's own result is written: a failure here costs only this table
            incentive.main(["--ckpt", str(ckpt), "--clutter", str(spec["root"]), "--out",
                            str(spec["out"]), "--profile", "", "--images",
                            str(sizes.spatial_images), "--batch",
                            str(min(256, sizes.spatial_images)), "--steps",
                            str(sizes.incentive_steps),
                            *(["--pair-with", str(pair)] if pair else [])])
        except Exception as error:  # noqa: BLE001 (said in the run's log, the run stands)
            payload.say(f"incentive check{' (paired)' if pair else ''} failed: {error!r}")


CAMPAIGN_COLUMNS = ("dataset", "arm", "status", "epochs", "knn20_top1", "knn200_top1",
                    "linear_top1", "mask_in_box", "mask_in_box_prior", "mask_in_box_best_map",
                    "border_share", "pretrain_s", "s_per_step", "data_format")


def campaign_rows(out: Path, statuses: Dict[str, str]) -> List[Dict[str, Any]]:
    rows = []
    for dataset in DATASETS:
        for arm in ARMS:
            name = f"{dataset}/{arm}"
            path = out / "campaign_runs" / f"{dataset}-{_slug(arm)}.json"
            row = {"dataset": dataset, "arm": arm, "status": statuses.get(name, "not run")}
            if path.exists():
                row.update({k: v for k, v in json.loads(path.read_text()).items()
                            if k in CAMPAIGN_COLUMNS and k != "status"})
                row["status"] = "done"
            if name in statuses or path.exists():
                rows.append(row)
    return rows


# ------------------------------------------------------------------------------- the command
class Report:
    """summary.md and summary.json under ``out``, rewritten at every event, and the archive."""

    def __init__(self, out: Path, deadline: Deadline, archive: Optional[Path]):
        self.out, self.deadline, self.archive = out, deadline, archive
        self.lines: List[str] = []
        self.state: Dict[str, Any] = {"stages": {}}

    def add(self, line: str, stage: Optional[str] = None, status: Optional[str] = None) -> None:
        stamp = f"[{self.deadline.elapsed():5.0f} s]"
        self.lines.append(f"- {stamp} {line}")
        if stage:
            self.state["stages"][stage] = status or line
        payload.say(line)
        self.write()

    def write(self, final: Optional[str] = None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        md = ["# device: one call, deadline "
              f"{self.deadline.seconds:.0f} s (margin {self.deadline.margin:.0f} s)", "",
              *[f"- {k}: {v}" for k, v in metadata().items()], "", *self.lines]
        if final:
            md += ["", final]
            self.state["final"] = final
        (self.out / "summary.md").write_text("\n".join(md) + "\n")
        (self.out / "summary.json").write_text(json.dumps(self.state, indent=2, default=str))
        if self.archive:
            self.archive.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.archive.with_name(self.archive.name + ".partial")
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(self.out, arcname=self.out.name)
            tmp.rename(self.archive)


def _child(kind: str, spec: Dict[str, Any]) -> List[str]:
    return [sys.executable, "-m", "benchmarks.device", "--child", kind, "--spec",
            json.dumps(spec, default=str)]


def _json(path: Path) -> Optional[Dict]:
    return json.loads(path.read_text()) if path.exists() else None


def stage_throughput(args, sizes: Sizes, paths: Dict[str, Path], deadline: Deadline,
                     report: Report) -> Dict[str, Dict]:
    from benchmarks.common import write_table

    path = args.out / "throughput.json"
    if path.exists():
        report.add("throughput: kept from an earlier call (throughput.json)", "throughput",
                   "kept")
        return json.loads(path.read_text())
    results: Dict[str, Dict] = {}
    dali_ok, dali_note = dali_available()
    loaders = [loader for loader in LOADERS if loader != "dali" or dali_ok]
    if not dali_ok:
        results["dali"] = {"loader": "dali", "status": f"not run: {dali_note}"}
        report.add(f"throughput dali: not run: {dali_note}")
    if deadline.left() < sizes.min_stage_s:
        loaders = []
        for loader in LOADERS:
            results.setdefault(loader, {"loader": loader, "status": "not started: the deadline"})
        report.add(f"throughput: not started, {deadline.left():.0f} s left")
    files = {loader: args.out / "logs" / f"throughput-{loader}.json" for loader in loaders}
    # one process, torchvision first (forked loader workers deadlock after DALI ran in it);
    # each loader's file is written as it finishes
    spec = {"loaders": loaders, "size": args.size, "train": paths["cifar_train"],
            "work_dir": args.work_dir / "throughput", "workers": os.cpu_count() or 1,
            "results": files, "launched_at": time.time()}

    def ended(loader):
        result = _json(files[loader]) or {"loader": loader}
        if result.get("train_images_per_s") is not None:
            result["status"] = "done"
            report.add(f"throughput {loader}: {result['train_images_per_s']:.0f} images/s "
                       f"training, {result['loader_images_per_s']:.0f} images/s loader alone, "
                       f"GPU busy {_share(result['gpu_busy'])}")
        results[loader] = result
        return result

    if loaders:
        status = run_children({"throughput": _child("throughput", spec)}, args.out / "logs",
                              deadline)["throughput"]
        for loader in loaders:
            if "status" not in ended(loader):
                results[loader]["status"] = (status if status != "done" else
                                             "failed (no result: see logs/throughput.log)")
                report.add(f"throughput {loader}: {results[loader]['status']}")
    results = {loader: results[loader] for loader in LOADERS if loader in results}
    path.write_text(json.dumps(results, indent=2, default=str))
    rows = list(results.values())
    cols = ["loader", "status", "dali_device", "workers", "batch", "px", "precision",
            "timed_steps", "train_images_per_s", "loader_images_per_s", "gpu_busy",
            "gpu_memory_MiB", "startup_s", "setup_s", "device"]
    notes = (f"One swav run ({sizes.profile.backbone}, batch {sizes.profile.batch_size}, "
             f"{sizes.profile.crop_size} px, the campaign's augmentation) on CIFAR-10's "
             f"training images; {sizes.timed_steps} steps timed after {sizes.warmup_steps} "
             "warm-up steps; each loader gets the machine's cores (torchvision workers, DALI "
             "threads). `loader_images_per_s`: the loader alone (no model). `gpu_busy`: mean "
             "share of time a kernel ran while training (NVML), n/a without a GPU. "
             "`startup_s`: what a new process takes to its first step (imports, timed once, "
             "plus this loader's model, data and trainer set-up `setup_s`).")
    write_table("throughput", "Throughput: the host's torchvision loader and DALI pipeline",
                rows, cols, metadata(), notes, args.out)
    done = all(r.get("status") == "done" for r in rows)
    report.add("throughput: written (throughput.md)", "throughput",
               "done" if done else "; ".join(f"{r['loader']}: {r['status']}" for r in rows))
    return results


def _share(value) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, float) else str(value)


def stage_overhead(args, sizes: Sizes, deadline: Deadline, report: Report) -> Optional[Dict]:
    path = args.out / "overhead.json"
    if path.exists():
        report.add("overhead: kept from an earlier call (overhead.json)", "overhead", "kept")
        return json.loads(path.read_text())
    if deadline.left() < sizes.min_stage_s:
        report.add(f"overhead: not started, {deadline.left():.0f} s left", "overhead",
                   "not started: the deadline")
        return None
    spec = {"size": args.size, "out": args.out, "ca_overrides": args.ca_overrides}
    status = run_children({"overhead": _child("overhead", spec)}, args.out / "logs",
                          deadline)["overhead"]
    result = _json(path)
    if status == "done" and result:
        report.add(f"overhead: swav_scaca / swav step time {result['step_ratio']:.2f}, memory "
                   f"{result['memory_ratio']:.2f} ({result['setting']}, {result['device']})",
                   "overhead", "done")
    else:
        report.add(f"overhead: {status}", "overhead", status)
    return result


def measure_overhead(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The overhead benchmark's interleaved measurement (``benchmarks/step_cost.py``) of one
    setting, with the CA overrides."""
    import torch

    from benchmarks import step_cost
    from benchmarks.common import write_table

    sizes = _profiles()[spec["size"]]
    settings = {**step_cost.SETTINGS, **step_cost.GPU_SETTINGS}
    overrides, size, batch = settings[sizes.overhead_setting]
    if spec["size"] == "tiny":
        size, batch = 16, 4  # the overhead benchmark's --tiny sizes
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = step_cost.measure(sizes.overhead_setting, [*overrides, *spec["ca_overrides"]], size,
                            batch, sizes.overhead_repeats, device)
    ratio = next(r for r in rows if r["method"] == "ratio scaca/swav")
    out = Path(spec["out"])
    notes = ("The overhead benchmark's measurement (fp32, eager): the same random batch and "
             "weights for swav and swav_scaca, steps interleaved, median of "
             f"{sizes.overhead_repeats}; extra CA overrides: {spec['ca_overrides'] or 'none'}. "
             + ("Memory: peak CUDA allocation." if device == "cuda" else
                "Memory: parameters, gradients, momentum and saved tensors (CPU)."))
    write_table("overhead", "Overhead of the add-on on this machine", rows,
                ["setting", "method", "batch", "image_px", "step_s_median", "images_per_s",
                 "memory_MiB"], metadata({"device": device}), notes, out)
    result = {"setting": sizes.overhead_setting, "device": device, "batch": batch, "px": size,
              "step_ratio": ratio["step_s_median"], "memory_ratio": ratio["memory_MiB"],
              "ca_overrides": spec["ca_overrides"]}
    (out / "overhead.json").write_text(json.dumps(result, indent=2))
    return result


def stage_campaign(args, sizes: Sizes, paths: Dict[str, Path], throughput: Dict[str, Dict],
                   overhead: Optional[Dict], deadline: Deadline, report: Report) -> None:
    from benchmarks.common import write_table

    datasets = [d for d in DATASETS if d in args.datasets]
    names = campaign_names(datasets, args.arms)
    counts = {d: _count(paths[f"{d}_train"]) for d in datasets}
    tests = {d: _count(paths[f"{d}_test"]) for d in datasets}
    plan = sizing(throughput, overhead, len(names), counts, tests, deadline.left(), sizes,
                  args.epochs)
    (args.out / "sizing.json").write_text(json.dumps(plan, indent=2, default=str))
    report.add(f"campaign sizing: loader {plan['loader']}, epochs {plan['epochs']} "
               f"({len(names)} runs side by side; sizing.json)")
    runs_dir = args.out / "campaign_runs"
    children, statuses = {}, {}
    workers = max(1, (os.cpu_count() or 1) // max(1, len(names)))
    for dataset, arm in names:
        name = f"{dataset}/{arm}"
        run_file = runs_dir / f"{dataset}-{_slug(arm)}.json"
        if run_file.exists():
            statuses[name] = "kept"
            continue
        if plan["loader"] is None or plan["epochs"][dataset] < 1:
            statuses[name] = "not started: no epoch fits before the deadline"
            continue
        children[name] = _child("run", {
            "size": args.size, "dataset": dataset, "arm": arm, "loader": plan["loader"],
            "epochs": plan["epochs"][dataset], "workers": workers,
            "ca_overrides": args.ca_overrides, "train": paths[f"{dataset}_train"],
            "test": paths[f"{dataset}_test"], "root": paths.get("clutter_root", ""),
            "pair_root": paths.get("clutter_pair_root", ""), "out": args.out,
            "deadline_at": time.time() + deadline.left(),
            "work_dir": args.work_dir, "run_file": run_file})
    if children and deadline.left() < sizes.min_stage_s:
        for name in children:
            statuses[name] = "not started: the deadline"
        children = {}
    if children:
        report.add(f"campaign: {len(children)} runs started side by side ({workers} loader "
                   "workers or DALI threads each)")
        sampler = GpuSampler(every=2.0)
        sampler.start()

        def ended(name, status):
            report.add(f"campaign {name}: {status}")

        statuses.update(run_children(children, args.out / "logs" / "campaign", deadline,
                                     on_exit=ended))
        report.state["campaign_gpu"] = sampler.stop()
    rows = campaign_rows(args.out, statuses)
    notes = (sizes.profile.why + f" Arms: {', '.join(args.arms)}; extra CA overrides of "
             f"swav_scaca and its control: {args.ca_overrides or 'none'}. Epochs per "
             f"dataset: {plan['epochs']} (loader {plan['loader']}; sizing.json: {FORMULA}). "
             f"Accuracies in %: k-NN and linear on the dataset's own training and test "
             f"images ({', '.join(f'{d} {counts[d]} + {tests[d]}' for d in datasets)}). "
             "mask-in-box: mask mass "
             "in the object's box over the box's share (1 = uniform); mask_in_box_prior: the "
             "same for the arm's mean mask (a fixed bias: above it, the masks follow the "
             "object); LEWEL: mean over its maps and its best map. One seed.")
    write_table("campaign", "Campaign on one device call: clutter set and CIFAR-10", rows,
                list(CAMPAIGN_COLUMNS), metadata({"gpu_during_campaign": report.state.get(
                    "campaign_gpu", "n/a")}), notes, args.out)
    done = sum(r["status"] == "done" for r in rows)
    stopped = [r for r in rows if r["status"] == "stopped at the deadline"]
    status = f"{done} of {len(rows)} runs finished" + (
        f", {len(stopped)} stopped at the deadline" if stopped else "")
    report.add(f"campaign: {status} (campaign.md)", "campaign", status)


def _count(folder: Path) -> int:
    return sum(1 for c in Path(folder).iterdir() if c.is_dir() for _ in c.iterdir())


def prepare_data(args, sizes: Sizes, report: Report, clutter_root: Optional[Path]
                 ) -> Dict[str, Path]:
    """CIFAR-10 (extracted once; subsets for tiny) and the clutter set (the carried one, else
    generated from the CIFAR-10 tarballs)."""
    from benchmarks import data

    train_pc, test_pc = sizes.cifar_per_class
    root = args.data_root
    if train_pc is None:
        data.prepare_cifar(root, args.cifar_dir)
        cifar_train, cifar_test = root / "train", root / "test"
    else:
        sample = root / f"sample-{train_pc}pc-{test_pc}pc"
        if not (sample / "test").is_dir():
            data.sample_cifar(args.cifar_dir, sample, train_pc, test_pc)
        cifar_train, cifar_test = sample / "train", sample / "test"
    if clutter_root is None or not (clutter_root / "DONE").exists():
        from solo_scaca.data.clutter import generate_clutter

        start = time.time()
        clutter_root = data.clutter_root(root, *sizes.clutter_per_class)
        generate_clutter(clutter_root, cifar_train.parent, *sizes.clutter_per_class)
        report.add(f"clutter set generated in {time.time() - start:.0f} s: {clutter_root}")
    # the incentive check's pair set: the same test objects on other canvases (seed 1)
    pair_root = root.parent / f"{clutter_root.name}-pair-seed1"
    if not (pair_root / "DONE").exists():
        from solo_scaca.data.clutter import generate_clutter

        generate_clutter(pair_root, cifar_train.parent, 1, -(-sizes.spatial_images // 10), seed=1)
    return {"cifar10_train": cifar_train, "cifar10_test": cifar_test, "cifar_train": cifar_train,
            "clutter_train": clutter_root / "train", "clutter_test": clutter_root / "test",
            "clutter_root": clutter_root, "clutter_pair_root": pair_root}


def run(args) -> int:
    """The three stages under the deadline; returns 0 (a cut is a result, not an error)."""
    deadline = Deadline(args.deadline, 0.0, start=args.t0)
    sizes = _profiles()[args.size]
    deadline.margin = sizes.margin_s if args.margin is None else args.margin
    base = args.base
    need_install = args.install == "yes" or (args.install == "auto" and not _importable("solo"))
    manifest = payload.read_manifest(base.parent) if need_install else None
    if manifest and manifest.get("commit") and not os.environ.get("SOLO_SCACA_COMMIT"):
        # the copy here may have no .git: the commit .device/ was prepared at
        os.environ["SOLO_SCACA_COMMIT"] = f"{manifest['commit']} (at --prepare)"
    report = Report(args.out, deadline, args.archive)
    report.add(f"start: {args.size} sizes, deadline {args.deadline:.0f} s, out {args.out}")
    clutter_root = args.clutter_root
    if need_install:
        if not (base / "MANIFEST.json").exists():
            report.write(f"cannot run: the host is not importable here and {base} has no "
                         "MANIFEST.json (python3 -m benchmarks device --prepare builds it)")
            return 2
        installed = payload.install(base, want_dali=not _importable("nvidia.dali"))
        payload.activate(installed["site"])
        for note in installed["notes"]:
            report.add(f"install: {note}")
        clutter_root = clutter_root or installed["clutter"]
        if args.cifar_dir is None:
            args.cifar_dir = installed["cifar_dir"]
    if args.cifar_dir is None:
        from benchmarks import data

        carried = base / "cifar10"
        args.cifar_dir = carried if carried.is_dir() else data.shared_data_dir() / "cifar10"
    paths = prepare_data(args, sizes, report, clutter_root)
    report.add(f"data ready: CIFAR-10 {paths['cifar10_train']}, clutter {paths['clutter_root']}")
    throughput = stage_throughput(args, sizes, paths, deadline, report)
    overhead = stage_overhead(args, sizes, deadline, report)
    if deadline.left() < sizes.min_stage_s:
        report.add(f"campaign: not started, {deadline.left():.0f} s left", "campaign",
                   "not started: the deadline")
    else:
        stage_campaign(args, sizes, paths, throughput, overhead, deadline, report)
    cut = [k for k, v in report.state["stages"].items()
           if "deadline" in str(v)]
    final = (f"stopped at the deadline ({args.deadline:.0f} s) after "
             f"{deadline.elapsed():.0f} s: {', '.join(cut)} cut; the files above are what "
             "finished" if cut else
             f"finished in {deadline.elapsed():.0f} s (deadline {args.deadline:.0f} s)")
    report.write(final)
    print((args.out / "summary.md").read_text(), flush=True)
    return 0


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def child_main(kind: str, spec: Dict[str, Any]) -> None:
    """A stage's or run's own process (``--child``)."""
    import warnings

    warnings.filterwarnings("ignore")
    if kind == "throughput":
        sizes = _profiles()[spec["size"]]
        import lightning.pytorch  # noqa: F401 (the imports a fresh run process pays, timed)
        import solo_scaca.cli.pretrain  # noqa: F401

        imports_s = time.time() - spec["launched_at"]
        for loader in spec["loaders"]:
            result = measure_throughput(loader, sizes, Path(spec["train"]),
                                        Path(spec["work_dir"]) / loader, int(spec["workers"]))
            # what a new process with this loader takes to its first step
            result["startup_s"] = imports_s + result["setup_s"]
            path = Path(spec["results"][loader])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2, default=str))
    elif kind == "overhead":
        measure_overhead(spec)
    elif kind == "run":
        campaign_run(spec)
    else:
        raise SystemExit(f"unknown child {kind!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m benchmarks device", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The device tool's calls for the .device/ built here:\n\n"
               + payload.tool_calls(payload.read_manifest()))
    p.add_argument("--prepare", action="store_true",
                   help="build .device/ here (wheels, DALI, CIFAR-10, the clutter set) and "
                        "print the device tool's calls")
    p.add_argument("--no-dali", action="store_true", help="--prepare without DALI")
    p.add_argument("--no-clutter", action="store_true",
                   help="--prepare without the clutter set (the run then generates it)")
    p.add_argument("--out", type=Path, default=Path("/tmp/device-results"),
                   help="results folder (default /tmp/device-results)")
    p.add_argument("--archive", type=Path, default=None,
                   help="also keep a tar.gz of --out here, rewritten after every event")
    p.add_argument("--deadline", type=float, default=480.0,
                   help="seconds from the command's start (default 480)")
    p.add_argument("--margin", type=float, default=None,
                   help="kill children this many seconds before the deadline (default 20; "
                        "--tiny 3)")
    p.add_argument("--tiny", action="store_true",
                   help="CPU sizes: 1 epoch, a few images, every stage's CPU path")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--epochs", type=int, default=None,
                   help="the campaign's epochs on both datasets, instead of sizing them")
    p.add_argument("--ca-overrides", nargs="*", default=[], metavar="OVERRIDE",
                   help="Hydra overrides of swav_scaca and its uniform control (the best CA "
                        "objective, e.g. method_kwargs.ca_objective=complement); default none")
    for option, default, text in (  # where the inputs are
            ("--cifar-dir", None,
             "CIFAR-10 tarballs (default .device/base/cifar10 where it exists, else the shared "
             "data's)"),
            ("--clutter-root", None,
             "a generated clutter set (default: the carried one, else generated)"),
            ("--data-root", payload.STAGE / "data" / "cifar10", None),
            ("--work-dir", payload.STAGE / "work", None),
            ("--base", payload.DEVICE_DIR / "base",
             "the prepared base (wheels, CIFAR-10, MANIFEST.json)")):
        p.add_argument(option, type=Path, default=default, help=text)
    p.add_argument("--install", choices=("auto", "yes", "no"), default="auto",
                   help="install --base's wheels and the staged streams (auto: when the host "
                        "does not import)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    t0 = time.monotonic()
    args = parser().parse_args(argv)
    if args.child:
        child_main(args.child, json.loads(args.spec))
        return 0
    if args.prepare:
        manifest = payload.prepare(dali=not args.no_dali, clutter=not args.no_clutter)
        print("\n" + payload.tool_calls(manifest), flush=True)
        return 0
    args.t0, args.size = t0, "tiny" if args.tiny else "gpu"
    args.out = args.out.resolve()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
