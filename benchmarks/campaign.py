"""What the campaign benchmarks share (ablations, controls, attention, methods, clutter): run
names, the random-init reference, runs side by side as processes, the command-line options,
and the host methods' pretraining configs."""

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from benchmarks import data, profiles, runs
from benchmarks.common import RESULTS, metadata

RANDOM_INIT = "random init"  # the reference row: the host's initialisation, not pretrained
HOST_CONFIG_DIR = runs.REPO / "scripts" / "pretrain" / "cifar"


def slug(variant: str) -> str:
    """File-name form of a variant's (arm's, method's) name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in variant).strip("_")


def run_file_of(runs_dir: Path, name: str, seed: int) -> Path:
    """The result file of one (variant, seed) of a campaign."""
    return runs_dir / f"{slug(name)}-seed{seed}.json"


# ------------------------------------------------------------------------- random-init reference
def random_init_checkpoint(profile: profiles.Profile, seed: int, train_path: Path,
                           path: Path) -> Path:
    """An untrained backbone (the host's initialisation under ``seed``) saved as an exported
    checkpoint, with the profile's pretraining config embedded."""
    import torch
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg

    from solo_scaca.cli.common import prepare_cfg
    from solo_scaca.host.backbone_io import build_backbone, save_backbone

    cfg = prepare_cfg(runs.pretrain_config(profile, "swav", seed, train_path, path.parent,
                                           "image_folder"), parse_cfg)
    torch.manual_seed(seed)
    args = OmegaConf.to_container(cfg)
    backbone = build_backbone(args["backbone"]["name"], args["data"]["dataset"], args["method"],
                              args["backbone"].get("kwargs"))
    return save_backbone({f"backbone.{k}": v for k, v in backbone.state_dict().items()}, args,
                         path)


def run_random_init(profile_name: str, profile: profiles.Profile, seed: int, train_path: Path,
                    test_path: Path, work_dir: Path, run_file: Path) -> Dict[str, Any]:
    """k-NN and linear accuracy of the randomly initialised backbone: what pretraining adds."""
    ckpt = random_init_checkpoint(profile, seed, train_path, work_dir / "random-init.ckpt")
    start = time.time()
    result = {"benchmark": "ablation", "profile": profile_name, "method": "swav", "seed": seed,
              **runs.evaluate(str(ckpt), profile, train_path, test_path, seed),
              "pretrain_s": 0.0, "pretrain_steps": 0, "s_per_step": "",
              "eval_s": time.time() - start, "checkpoint": str(ckpt),
              "settings": profiles.settings_of(profile), **metadata()}
    result["wall_s"] = result["eval_s"]
    runs.write_run_file(run_file, result)
    return result


def data_and_random_init(benchmark: str, profile_name: str, profile: profiles.Profile,
                         seed: int, runs_dir: Path, runs_pending: bool, random_init: bool,
                         data_root: Path, cifar_dir: Path, work_dir: Path,
                         fields: Dict[str, object]) -> Optional[Tuple[Path, Path]]:
    """The profile's data (train and test folders) when anything is left to run, and the
    random-init reference run file (``random_init``: evaluated if missing, with ``fields``)."""
    random_file = run_file_of(runs_dir, RANDOM_INIT, seed)
    paths = None
    if runs_pending or not random_file.exists():
        paths = data.profile_data(profile, data_root, cifar_dir)
    if not random_file.exists() and random_init:
        print(f"[{benchmark}] random init: evaluating", flush=True)
        result = run_random_init(profile_name, profile, seed, *paths, work_dir / "random-init",
                                 random_file)
        runs.write_run_file(random_file, {**result, "benchmark": benchmark, **fields})
    return paths


def check_settings(runs_dir: Path, settings: Dict[str, Any], profile_name: str,
                   remedy: str) -> None:
    """Refuses a campaign folder whose run files were measured with other settings (their
    ``base_settings``) than the profile has now."""
    for path in sorted(runs_dir.glob("*.json")):
        if not profiles.same_settings(json.loads(path.read_text())["base_settings"], settings):
            raise SystemExit(f"{path} was measured with other settings than profile "
                             f"{profile_name!r} has now: {remedy} to start again")


# --------------------------------------------------------------------------- runs side by side
def _raise_interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_parallel(pending: List[Tuple[str, int]], jobs: int, child_argv: List[str],
                 log_dir: Path, module: str = "benchmarks.controls") -> None:
    """Runs each (variant, seed) as its own process (``python3 -m <module> ... --only
    VARIANT@SEED``), ``jobs`` at a time: side by
    side on one GPU. Each writes its own result file; a failed run is said, not fatal. An
    interrupt (Ctrl-C, SIGINT or SIGTERM, e.g. from ``timeout``) stops the running children
    (SIGTERM, then SIGKILL after 30 s) and starts no more."""
    import signal
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    log_dir.mkdir(parents=True, exist_ok=True)
    children: List[subprocess.Popen] = []
    stop, lock = threading.Event(), threading.Lock()

    def one(pair: Tuple[str, int]) -> Tuple[str, int, int, Path]:
        variant, seed = pair
        log = log_dir / f"{slug(variant)}-seed{seed}.log"
        with log.open("w") as f:
            with lock:  # no child starts once the interrupt has been handled
                if stop.is_set():
                    return variant, seed, -1, log
                child = subprocess.Popen(
                    [sys.executable, "-m", module, *child_argv, "--only",
                     f"{variant}@{seed}", "--no-tables"],
                    stdout=f, stderr=subprocess.STDOUT, cwd=runs.REPO)
                children.append(child)
            return variant, seed, child.wait(), log

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for variant, seed, rc, log in pool.map(one, pending):
            state = "done" if rc == 0 else f"FAILED (exit {rc}), see {log}"
            print(f"[{module.rsplit('.', 1)[-1]}] {variant} seed {seed}: {state}", flush=True)
    except KeyboardInterrupt:
        with lock:
            stop.set()
            for child in children:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------- command line
class Request(NamedTuple):
    """What a campaign's command line asks for (``parse_campaign``)."""

    args: argparse.Namespace
    profile: profiles.Profile  # the --profile with every --set applied
    only: List[Tuple[str, int]]  # the --only pairs
    cifar_dir: Path

    def where(self) -> Tuple[str, profiles.Profile, Path, Path, Path, Path]:
        """``run_suite``'s first arguments: profile name and profile, results, data and work
        folders."""
        args = self.args
        return (args.profile, self.profile, args.out, args.data_root.expanduser(),
                self.cifar_dir, args.work_dir.expanduser())

    def how(self, *child_extra: str) -> Dict[str, Any]:
        """``run_suite``'s keywords for running side by side (``child_extra``: further options
        of the children) and writing the tables."""
        return {"jobs": self.args.jobs, "tables": not self.args.no_tables,
                "child_argv": child_options(self.args, self.cifar_dir, *child_extra)}


def campaign_parser(name: str, description: str, suite: str) -> argparse.ArgumentParser:
    """The parser of ``python3 -m benchmarks <name>``: ``--profile`` (one of ``suite``'s) and
    ``--out``; the benchmark adds its own options, then ``parse_campaign`` the common ones."""
    parser = argparse.ArgumentParser(prog=f"python3 -m benchmarks {name}",
                                     description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(profiles.PROFILES[suite]), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def parse_campaign(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]], name: str,
                   suite: str, known: Sequence[str], what: str = "VARIANT") -> Request:
    """Adds the campaign options (``add_campaign_arguments``), parses ``argv`` and checks it."""
    add_campaign_arguments(parser, name, what)
    args = parser.parse_args(argv)
    only = parse_pairs(parser, args.only, known, what)
    profile = campaign_profile(parser, args, suite)
    return Request(args, profile, only, args.cifar_dir or data.shared_data_dir() / "cifar10")


def add_data_arguments(parser: argparse.ArgumentParser, work_dir: Path) -> None:
    """``--data-root``, ``--cifar-dir`` and ``--work-dir`` (default ``work_dir``)."""
    parser.add_argument("--data-root", type=Path, default=data.DEFAULT_DATA_ROOT)
    parser.add_argument("--cifar-dir", type=Path, default=None,
                        help="folder of CIFAR-10's train.tar.gz and test.tar.gz (default: "
                             "$SOLO_SCACA_SHARED_DATA/cifar10, else ../shared/data/cifar10)")
    parser.add_argument("--work-dir", type=Path, default=work_dir,
                        help="where the pretraining checkpoints go (outside the repository)")


def add_campaign_arguments(parser: argparse.ArgumentParser, name: str,
                           what: str = "VARIANT") -> None:
    """The profile, data and work-folder options of a campaign (controls, methods, clutter),
    and its runs side by side: ``--jobs``, ``--only WHAT@SEED``, ``--no-tables``."""
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the profile (e.g. epochs=4); repeat")
    add_data_arguments(parser, data.DEFAULT_WORK_DIR / name)
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs side by side as separate processes (one GPU: the gpu "
                             "profile's controls campaign uses 11)")
    parser.add_argument("--only", action="append", default=[], metavar=f"{what}@SEED",
                        help="run just this pair (repeat); used by --jobs")
    parser.add_argument("--no-tables", action="store_true", help="do not write the tables")


def parse_pairs(parser: argparse.ArgumentParser, items: Sequence[str], known: Sequence[str],
                what: str = "VARIANT") -> List[Tuple[str, int]]:
    """``--only NAME@SEED`` items as (name, seed) pairs; a wrong one is a parser error."""
    pairs = []
    for item in items:
        name, sep, seed = item.rpartition("@")
        if not sep or name not in known or not seed.isdigit():
            parser.error(f"--only takes {what}@SEED with {what} one of {list(known)}, "
                         f"got {item!r}")
        pairs.append((name, int(seed)))
    return pairs


def campaign_profile(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     suite: str) -> profiles.Profile:
    """The ``--profile`` of ``suite`` with every ``--set`` applied (``--jobs`` checked)."""
    if getattr(args, "jobs", 1) < 1:
        parser.error(f"--jobs={args.jobs}: allowed values are integers >= 1")
    profile = profiles.PROFILES[suite][args.profile]
    for item in args.set:
        profile = dataclasses.replace(profile, **profiles.parse_field(parser, profile, item))
    return profile


def child_options(args: argparse.Namespace, cifar_dir: Path, *extra: str) -> List[str]:
    """The options a campaign's child process (``run_parallel``) gets: the parent's own."""
    return ["--profile", args.profile, "--out", str(args.out), *extra,
            "--data-root", str(args.data_root), "--cifar-dir", str(cifar_dir),
            "--work-dir", str(args.work_dir), *(f"--set={i}" for i in args.set)]


# ------------------------------------------------------------------ the host methods' configs
def method_overrides(profile: profiles.Profile, host: str) -> List[str]:
    """The profile's overrides of ``<host>_scaca.yaml`` (the same for both arms)."""
    import omegaconf

    if host == "swav":  # the controls' swav runs exactly (scripts/pretrain/custom/swav_scaca.yaml)
        return profile.pretrain_overrides()
    raw = omegaconf.OmegaConf.load(HOST_CONFIG_DIR / f"{host}_scaca.yaml")
    pipelines = [d for d in raw.defaults if isinstance(d, dict) and "augmentations" in d]
    asymmetric = pipelines and pipelines[0]["augmentations"] == "asymmetric.yaml"
    out = [*profile.generic_overrides(), "data.dataset=custom", "++data.no_labels=False"]
    augmentation = [o for o in profile.hydra_overrides if o.startswith("augmentations.0.")]
    out += [o for o in profile.hydra_overrides if o not in augmentation]
    for index in ((0, 1) if asymmetric else (0,)):
        out += [o.replace("augmentations.0.", f"augmentations.{index}.") for o in augmentation]
        out.append(f"augmentations.{index}.crop_size={profile.crop_size}")
    if host == "deepclusterv2":
        out.append(f"method_kwargs.num_prototypes=[{','.join([str(profile.num_prototypes)] * 3)}]")
    if host == "dino":
        out.append(f"method_kwargs.num_prototypes={profile.num_prototypes}")
    if host in ("dino", "byol"):
        out.append("momentum.base_tau=0.99")
    return out


def config_of(host: str) -> Tuple[Path, str]:
    """The config both arms start from: the controls' custom config for SwAV (its rows are then
    the controls' runs), the cifar drop-in config of every other method."""
    if host == "swav":
        return runs.PRETRAIN_CONFIG_DIR, "swav_scaca"
    return HOST_CONFIG_DIR, f"{host}_scaca"
