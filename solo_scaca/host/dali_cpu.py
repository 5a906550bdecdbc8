"""The host's NVIDIA DALI data modules, with two fill-ins: ``dali.device=cpu`` on a machine
without a GPU, and the run's seed.

The host (solo-learn 1.0.6) always builds its DALI pipelines with ``device_id`` = the local
rank. DALI (2.x) builds a pipeline without CUDA only when ``device_id=None``, so the host's
``data.format=dali dali.device=cpu`` fails on a CPU-only machine ("You are trying to create a
GPU DALI pipeline while CUDA is not available"). Everything else of the host's CPU path works
(CPU decoder, augmentations, iterator wrappers, label/index decoding).

The host's pretraining module also never passes the run's seed to its pipeline: every run
draws the builder's default, ``12 + local rank``, so runs of different ``seed`` read the same
image order and the same augmentations (``seed_everything`` does not reach DALI).
``PretrainDALIDataModule(seed=cfg.seed)`` gives the pipeline ``seed + local rank`` instead.

The classes here are the host's, with one change when the DALI device is ``cpu``: the
pipeline builders give DALI ``device_id=None`` (a CPU-only pipeline, which is all a ``cpu``
pipeline holds). With ``dali.device=gpu`` and no ``seed`` everything is the host's, unchanged.
docs/development.md lists what the host's DALI modules cannot serve and why.
"""

import functools
from typing import Any, Dict, Optional
from unittest import mock

import torch

try:
    from solo.data import dali_dataloader as _host
    from solo.data.dali_dataloader import build_transform_pipeline_dali  # noqa: F401 (re-export)
except ImportError as err:  # nvidia.dali missing
    raise ImportError(
        "data.format=dali needs NVIDIA DALI, which does not import: install the plugin's "
        "`dali` extra (in its checkout: pip install --no-build-isolation \".[dali]\"), or "
        f"pip install nvidia-dali-cuda120. Original error: {err}"
    ) from err


def data_module_kwargs(cfg: Any) -> Dict[str, Any]:
    """The keyword arguments both of the host's DALI data modules take, from a parsed config."""
    return dict(
        dataset=cfg.data.dataset,
        train_data_path=cfg.data.train_path,
        num_workers=cfg.data.num_workers,
        batch_size=cfg.optimizer.batch_size,
        data_fraction=cfg.data.fraction,
        dali_device=cfg.dali.device,
    )


def dali_device_id(dali_device: str, local_rank: int) -> Optional[int]:
    """``device_id`` for a DALI pipeline: ``None`` (CPU-only) for ``cpu``, else the local rank
    (the host's choice)."""
    if dali_device not in ("gpu", "cpu"):
        raise ValueError(f"dali.device={dali_device!r}: allowed values are 'gpu', 'cpu'")
    return None if dali_device == "cpu" else local_rank


def _check_gpu_available(dali_device: str) -> None:
    if dali_device == "gpu" and not torch.cuda.is_available():
        raise RuntimeError(
            "dali.device=gpu needs a CUDA device and none is available: "
            "set dali.device=cpu to run the DALI pipeline on the CPU"
        )


class _CPUDeviceIdMixin:
    """After the host's ``__init__`` (whose seed is ``seed + device_id``), sets ``device_id``
    to what DALI needs for the builder's device; the host's ``setup`` passes it on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.device_id = dali_device_id(self.device, self.device_id)


class PretrainPipelineBuilder(_CPUDeviceIdMixin, _host.PretrainPipelineBuilder):
    """The host's pretraining pipeline builder; ``device_id=None`` on a ``cpu`` pipeline."""


class NormalPipelineBuilder(_CPUDeviceIdMixin, _host.NormalPipelineBuilder):
    """The host's classification pipeline builder; ``device_id=None`` on a ``cpu`` pipeline."""


class CustomNormalPipelineBuilder(_CPUDeviceIdMixin, _host.CustomNormalPipelineBuilder):
    """The host's custom-data classification builder; ``device_id=None`` on ``cpu``."""


class PretrainDALIDataModule(_host.PretrainDALIDataModule):
    """The host's ``PretrainDALIDataModule``; with ``dali_device="cpu"`` its pipeline is built
    CPU-only, so it also runs without a GPU. ``seed`` (the run's seed; None: the host's 12)
    seeds the pipeline with ``seed + local rank``, as the host does with its own 12."""

    def __init__(self, *args, seed: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline_seed = seed

    def setup(self, stage: Optional[str] = None):
        _check_gpu_available(self.dali_device)
        builder = PretrainPipelineBuilder if self.dali_device == "cpu" else None
        if self.pipeline_seed is not None:
            builder = functools.partial(builder or _host.PretrainPipelineBuilder,
                                        seed=self.pipeline_seed)
        if builder is None:
            return super().setup(stage)
        # the host's setup names its builder class directly: give it ours for this call
        with mock.patch.object(_host, "PretrainPipelineBuilder", builder):
            return super().setup(stage)


class ClassificationDALIDataModule(_host.ClassificationDALIDataModule):
    """The host's ``ClassificationDALIDataModule``; with ``dali_device="cpu"`` its pipelines
    are built CPU-only, so it also runs without a GPU."""

    _CPU_BUILDERS = {
        _host.NormalPipelineBuilder: NormalPipelineBuilder,
        _host.CustomNormalPipelineBuilder: CustomNormalPipelineBuilder,
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.dali_device == "cpu":
            self.pipeline_class = self._CPU_BUILDERS[self.pipeline_class]

    def setup(self, stage: Optional[str] = None):
        _check_gpu_available(self.dali_device)
        return super().setup(stage)
