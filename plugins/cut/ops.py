"""Pure tensor maths of CUT / QS-Attn: image <-> [-1, 1] tensors, official test-time resizing,
patch sampling, query selection by attention entropy, and the PatchNCE loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LOCAL_KERNEL = 7  # QS-Attn local attention window (7x7)


# ---------------------------------------------------------------- images
def to_input(images: list[np.ndarray]) -> torch.Tensor:
    """Same-size HxWx3 [0, 1] arrays -> N3HW in [-1, 1] (official `Normalize(0.5, 0.5)`)."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return x * 2 - 1


def to_images(y: torch.Tensor) -> list[np.ndarray]:
    """tanh output N3HW -> HxWx3 float32 in [0, 1] (official `tensor2im` before its uint8 cast)."""
    out = ((y.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(o, dtype=np.float32) for o in out]


def tensor2im(y: torch.Tensor) -> np.ndarray:
    """The official `util.tensor2im` of the first image: clamp, (y+1)/2*255, truncating uint8 cast."""
    return ((y[0].clamp(-1, 1).permute(1, 2, 0).cpu().float().numpy() + 1) / 2.0 * 255.0).astype(np.uint8)


def pil_resize(image: np.ndarray, width: int, height: int, eight_bit: bool) -> np.ndarray:
    """Bicubic resize as the official loader does it (PIL). 8-bit sources go through uint8 like the
    official PIL path (bit-exact); deeper sources are resized per channel in float ('F' mode)."""
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    if eight_bit:
        pil = Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
        return np.asarray(pil.resize((width, height), Image.BICUBIC), dtype=np.float32) / 255.0
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), "F").resize((width, height),
                                                                                         Image.BICUBIC))
             for c in range(3)]
    return np.clip(np.stack(chans, -1), 0, 1).astype(np.float32)


def multiple_of_4(width: int, height: int) -> tuple[int, int]:
    """Official `__make_power_2(base=4)`: round each side to the nearest multiple of 4."""
    return max(4, int(round(width / 4) * 4)), max(4, int(round(height / 4) * 4))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Deterministic stand-in for the official test-time `RandomCrop` (crop only when larger)."""
    h, w = image.shape[:2]
    if h <= size and w <= size:
        return image
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[top:top + size, left:left + size]


def official_preprocess(image: np.ndarray, mode: str, load_size: int, crop_size: int, eight_bit: bool) -> np.ndarray:
    """The official test transform (`get_transform` with `--preprocess mode`), then multiple-of-4 rounding."""
    h, w = image.shape[:2]
    if "resize" in mode:
        image = pil_resize(image, load_size, load_size, eight_bit)
    elif "scale_width" in mode and not (w == load_size and h >= crop_size):
        image = pil_resize(image, load_size, int(max(load_size * h / w, crop_size)), eight_bit)
    if "crop" in mode:
        image = center_crop(image, crop_size)
    width, height = multiple_of_4(image.shape[1], image.shape[0])
    return pil_resize(image, width, height, eight_bit)


def pad_to_multiple(x: torch.Tensor, base: int = 4) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad bottom/right to a multiple of `base` (keep-size mode); returns (padded, h, w)."""
    h, w = x.shape[-2:]
    ph, pw = -h % base, -w % base
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


# ---------------------------------------------------------------- patch sampling
def random_patch_ids(feat: torch.Tensor, num_patches: int) -> torch.Tensor:
    """CUT: `num_patches` distinct random positions of a B,C,H,W map (shared by the batch)."""
    hw = feat.shape[2] * feat.shape[3]
    return torch.randperm(hw)[: min(num_patches, hw)].to(feat.device)


def attention_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Entropy of each attention row (last dim), with 0 * log 0 = 0 as the official code does."""
    neg_log = -torch.log(attn)
    neg_log = torch.where(torch.isinf(neg_log), torch.zeros_like(neg_log), neg_log)
    return (attn * neg_log).sum(-1)


def lowest_entropy_rows(attn: torch.Tensor, num: int) -> torch.Tensor:
    """Indices (B, num) of the queries whose attention rows are the most peaked (lowest entropy)."""
    _, order = torch.sort(attention_entropy(attn))
    return order[:, :num]


def global_attention(flat: torch.Tensor) -> torch.Tensor:
    """softmax(X X^T) over all positions, X = (B, HW, C) features, un-scaled as in QS-Attn."""
    return torch.bmm(flat, flat.transpose(1, 2)).softmax(dim=2)


def unfold_local(feat: torch.Tensor) -> torch.Tensor:
    """(B, C*49, HW) 7x7 neighbourhoods, zero padded (channel-major, as `F.unfold` orders them)."""
    return F.unfold(feat, kernel_size=LOCAL_KERNEL, stride=1, padding=LOCAL_KERNEL // 2)


def local_attention(feat: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """(B, HW, 49) softmax of query . neighbour over each query's 7x7 window.

    Bug-compatible with the official code: the unfolded (C*49) vector is read as (49, C),
    i.e. the 'neighbours' are not the clean per-position vectors (see the fixture README).
    """
    b, c = feat.shape[:2]
    k2 = LOCAL_KERNEL * LOCAL_KERNEL
    length = local.shape[2]
    keys = local.permute(0, 2, 1).reshape(b, length, k2, c).flatten(0, 1)
    queries = feat.permute(0, 2, 3, 1).reshape(b * length, c, 1)
    return torch.bmm(keys, queries).softmax(dim=1).reshape(b, length, k2)


def qs_sample(feat: torch.Tensor, num_patches: int, mode: str, given=None):
    """QS-Attn sampling of one layer -> (B*n, C) attended features and the selection to reuse.

    The source pass (given None) computes attention from `feat` and keeps the `num_patches`
    lowest-entropy queries; the translated pass passes that selection back in (`given`), so the
    same rows route both feature maps.
    """
    b = feat.shape[0]
    flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, HW, C)
    batch = torch.arange(b, device=feat.device)[:, None]
    n = min(num_patches, flat.shape[1])
    if mode == "local":
        local = unfold_local(feat)
        if given is None:
            attn_local = local_attention(feat, local)
            ids = lowest_entropy_rows(attn_local, n)
            given = (ids, attn_local[batch, ids, :].flatten(0, 1).unsqueeze(1))
        ids, rows = given
        c = feat.shape[1]
        values = local[batch, :, ids].permute(0, 2, 1).flatten(0, 1).reshape(b * ids.shape[1], -1, c)
        return torch.bmm(rows, values).flatten(0, 1), given
    if given is None:
        attn = global_attention(flat)
        rank = local_attention(feat, unfold_local(feat)) if mode == "local_global" else attn
        given = attn[batch, lowest_entropy_rows(rank, n), :]
    return torch.bmm(given, flat).flatten(0, 1), given


# ---------------------------------------------------------------- loss
def patch_nce_loss(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int, nce_t: float = 0.07,
                   all_negatives: bool = False) -> torch.Tensor:
    """PatchNCE per query patch: cross-entropy of (positive, negatives of the same image) / T.

    feat_q, feat_k: (B*n, dim) L2-normalised; the key is detached; the positive is the same
    position, negatives are the other positions of the same image (diagonal masked with -10).
    """
    num, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = (feat_q * feat_k).sum(1, keepdim=True)
    groups = 1 if all_negatives else batch_size
    q, k = feat_q.view(groups, -1, dim), feat_k.view(groups, -1, dim)
    n = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))
    l_neg = l_neg.masked_fill(torch.eye(n, dtype=torch.bool, device=q.device)[None], -10.0).view(-1, n)
    logits = torch.cat([l_pos, l_neg], 1) / nce_t
    return F.cross_entropy(logits, torch.zeros(num, dtype=torch.long, device=q.device), reduction="none")
