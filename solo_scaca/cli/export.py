"""``solo-scaca-export CKPT OUT``: writes the backbone of a checkpoint without the add-on."""

import argparse
from typing import List, Optional

from solo_scaca.host.backbone_io import export_backbone
from solo_scaca.host.checkpoints import add_trust_option


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ckpt", help="a *_scaca or *_lewel (or any solo-learn) pretraining "
                                     "checkpoint")
    parser.add_argument("out", help="path of the backbone-only checkpoint to write (.ckpt)")
    add_trust_option(parser)
    args = parser.parse_args(argv)
    out = export_backbone(args.ckpt, args.out, args.trust_checkpoint)
    print(f"wrote {out}: backbone weights only (the cross-attention add-on or the LEWEL neck "
          "removed)")


if __name__ == "__main__":
    main()
