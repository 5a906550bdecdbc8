"""Does a spatial mask sit on the object? Mask-in-box and border share of masks on a map grid.

``mask_in_box``: the mask's mass inside the object's box over the box's share of the image
(1 for a uniform mask, above 1 when the mask is on the object). ``border_share``: the mass on
the outer ring of map cells over the ring's share of cells (1 for a uniform mask; above 1 when
the mask sits on the border, e.g. on zero padding). Masks are distributions over a map's H x W
cells; boxes are pixel boxes ``(x0, y0, x1, y1)`` (x1, y1 exclusive) of ``image_size`` images.
"""

from typing import Sequence, Tuple, Union

import torch

Box = Tuple[float, float, float, float]


def box_coverage(boxes: Union[torch.Tensor, Sequence[Box]], image_size: Union[int, Tuple[int, int]],
                 grid: Tuple[int, int]) -> torch.Tensor:
    """N x H x W: the share of each map cell's area that the box covers (cells tile the image)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    ih, iw = (image_size, image_size) if isinstance(image_size, int) else image_size
    h, w = grid

    def overlap(lo: torch.Tensor, hi: torch.Tensor, cells: int, size: int) -> torch.Tensor:
        edges = torch.linspace(0, size, cells + 1, dtype=torch.float64)
        left, right = edges[:-1], edges[1:]  # cell c spans [left_c, right_c)
        inter = (torch.minimum(hi[:, None], right) - torch.maximum(lo[:, None], left)).clamp(min=0)
        return inter / (right - left)  # N x cells

    ys = overlap(boxes[:, 1], boxes[:, 3], h, ih)
    xs = overlap(boxes[:, 0], boxes[:, 2], w, iw)
    return (ys[:, :, None] * xs[:, None, :]).float()


def box_masks(boxes: Union[torch.Tensor, Sequence[Box]], image_size: Union[int, Tuple[int, int]],
              grid: Tuple[int, int]) -> torch.Tensor:
    """N x H x W: uniform inside each box (by cell coverage), zero outside; sums to 1."""
    cover = box_coverage(boxes, image_size, grid)
    return cover / cover.sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def mask_in_box(masks: torch.Tensor, boxes: Union[torch.Tensor, Sequence[Box]],
                image_size: Union[int, Tuple[int, int]]) -> torch.Tensor:
    """N: mass of each mask (N x H x W, rows sum to 1) inside its box / the box's share of the
    image. 1 for a uniform mask, 1 / share for a mask entirely in the box."""
    masks = masks.float()
    cover = box_coverage(boxes, image_size, tuple(masks.shape[-2:])).to(masks.device)
    inside = (masks * cover).sum(dim=(1, 2)) / masks.sum(dim=(1, 2))
    return inside / cover.mean(dim=(1, 2)).clamp(min=1e-12)


def border_share(masks: torch.Tensor) -> torch.Tensor:
    """N: mass of each mask (N x H x W) on the outer ring of cells / the ring's share of cells.
    1 for a uniform mask. Needs H, W >= 3 (a smaller grid is all ring)."""
    h, w = masks.shape[-2:]
    if h < 3 or w < 3:
        raise ValueError(f"border share needs a map of at least 3 x 3 cells, got {h} x {w}")
    ring = torch.ones(h, w, device=masks.device)
    ring[1:-1, 1:-1] = 0
    masks = masks.float()
    mass = (masks * ring).sum(dim=(1, 2)) / masks.sum(dim=(1, 2))
    return mass / (ring.sum() / ring.numel())
