"""Is the cross-attention worth anything? swav_scaca against the host's swav and against the
extra-loss control ``ca_mask=uniform`` (docs/method.md section 6), with seeds, on a profile whose
spatial map is 8x8, plus design variants; the mechanism metrics of every run per epoch.

    python3 -m benchmarks controls --profile cpu    # hours on 2 CPU cores: runs in background
    python3 -m benchmarks controls --profile tiny   # seconds: what CI runs

Every run is pretrained through the plugin's pretraining command and evaluated exactly as the
accuracy benchmark does (``benchmarks/accuracy.py``: k-NN 20/200 and the host's linear model on
the test split). It resumes inside a run (the host's AutoResumer continues an interrupted
pretraining from its last epoch checkpoint under ``--work-dir``) and across runs (a run whose
result file ``<out>/<profile>/control_runs/<variant>-seed<seed>.json`` exists is skipped). Runs
go seed by seed, so that an interrupted campaign has balanced seeds. Writes ``controls.md/.csv``
(variants, mean +- std, t-tests against ``swav`` and ``ca_mask=uniform``, last-epoch mechanism
metrics), ``controls_runs.md/.csv`` and ``controls.png`` (mask entropy and partner sensitivity
per epoch).
"""

from pathlib import Path
from typing import Dict

from benchmarks.campaign import campaign_parser, parse_campaign
from benchmarks.control_variants import VARIANTS
from benchmarks.controls_runs import run_suite


def main(argv=None) -> Dict[str, Path]:
    """Command-line entry point (also ``python3 -m benchmarks controls``)."""
    parser = campaign_parser("controls", __doc__, "controls")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        metavar="VARIANT", help=f"default: all of {list(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per variant (default: each variant's own count)")
    request = parse_campaign(parser, argv, "controls", "controls", list(VARIANTS))
    return run_suite(*request.where(), request.args.variants, request.args.seeds,
                     only=request.only, **request.how())


if __name__ == "__main__":
    main()
