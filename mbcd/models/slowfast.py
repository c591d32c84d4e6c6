"""SlowFast-R101 8x8x1 (the paper's RGB backbone) as a plain-PyTorch :class:`Encoder`.

Hyper-parameters of the public checkpoint ``slowfast_r101_8x8x1_256e_kinetics400_rgb_20210218-0dd54025.pth``
(mmaction2 0.x config ``slowfast_r101_8x8x1_256e_kinetics400_rgb.py``): resample_rate tau = 4 (the slow
pathway sees every 4th of the 32 input frames -> 8), speed_ratio alpha = 4 (the fast pathway sees all 32),
channel_ratio beta_inv = 8 (fast width 8 = 64 / 8), lateral fusion kernel 7 (time-strided by alpha), slow
blocks inflated in res4/res5 only, fast blocks in every stage, fast stem kernel 5x7x7.

Output: global average of each pathway, concatenated ``[fast (256), slow (2048)]`` = 2304, the column order
of the checkpoint's ``cls_head.fc_cls`` (mmaction2's SlowFastHead concatenates in that order).

stem = both pathways' conv1 ... layer3 and all laterals (what mmaction2 freezes with ``frozen_stages=3``);
trunk = both layer4 + pooling. The stem returns one tensor: the slow features (already fused with the
layer3 lateral) and the fast features with time folded into channels, concatenated along channels
``(B, C_slow + alpha * C_fast, T_slow, H, W)``; the trunk unfolds it exactly. The clip length T must be a
multiple of tau (32 in the protocol).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mbcd.models.checkpoint import MMACTION
from mbcd.models.encoders import Encoder, global_pool
from mbcd.models.resnet3d import ResNet3dPathway
from mbcd.registries import ENCODERS


@ENCODERS.register("slowfast_r101")
class SlowFastR101(Encoder):
    """SlowFast 8x8x1 with ResNet-101 pathways; parameter names as in mmaction2's ``ResNet3dSlowFast``."""

    MODALITIES = ("rgb", "flow")
    TRUNK = ("slow_path.layer4", "fast_path.layer4")
    CHECKPOINT = MMACTION

    def __init__(
        self,
        modality: str,
        depth: int = 101,
        resample_rate: int = 4,
        speed_ratio: int = 4,
        channel_ratio: int = 8,
        fusion_kernel: int = 7,
    ) -> None:
        super().__init__(modality)
        if resample_rate % speed_ratio:
            raise ValueError(f"slowfast: resample_rate {resample_rate} must be a multiple of speed_ratio {speed_ratio}")
        self.resample_rate, self.speed_ratio = resample_rate, speed_ratio
        self.slow_path = ResNet3dPathway(
            depth, self.in_channels, 64, (1, 7, 7), (0, 0, 1, 1), True, channel_ratio, speed_ratio, fusion_kernel
        )
        self.fast_path = ResNet3dPathway(depth, self.in_channels, 64 // channel_ratio, (5, 7, 7), (1, 1, 1, 1))
        self._slow_channels = self.slow_path.layer4[0].conv1.conv.in_channels  # layer3 out + its lateral
        self._fast_channels = self.fast_path.layer4[0].conv1.conv.in_channels
        self.out_dim = self.slow_path.feat_dim + self.fast_path.feat_dim

    def stem(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] % self.resample_rate:
            raise ValueError(
                f"slowfast_r101({self.modality}): expected (B, {self.in_channels}, T, H, W) with T a multiple of "
                f"{self.resample_rate}, got {tuple(x.shape)}"
            )
        sp, fp = self.slow_path, self.fast_path
        slow = torch.nn.functional.interpolate(x, mode="nearest", scale_factor=(1.0 / self.resample_rate, 1.0, 1.0))
        fast_step = self.resample_rate // self.speed_ratio
        fast = x if fast_step == 1 else x[:, :, ::fast_step]
        slow, fast = sp.stem_stage(slow), fp.stem_stage(fast)
        slow = torch.cat((slow, sp.conv1_lateral(fast)), dim=1)
        for i in (1, 2, 3):
            slow, fast = getattr(sp, f"layer{i}")(slow), getattr(fp, f"layer{i}")(fast)
            slow = torch.cat((slow, getattr(sp, f"layer{i}_lateral")(fast)), dim=1)
        b, c, tf, h, w = fast.shape  # fold fast time into channels: (B, C, a*Ts, H, W) -> (B, C*a, Ts, H, W)
        a = self.speed_ratio
        fast = fast.reshape(b, c, tf // a, a, h, w).permute(0, 1, 3, 2, 4, 5).reshape(b, c * a, tf // a, h, w)
        return torch.cat((slow, fast), dim=1)

    def trunk(self, h: Tensor) -> Tensor:
        a, cs, cf = self.speed_ratio, self._slow_channels, self._fast_channels
        slow, fast = h.split((cs, cf * a), dim=1)
        b, _, ts, hh, ww = fast.shape  # unfold: (B, C*a, Ts, H, W) -> (B, C, a*Ts, H, W)
        fast = fast.reshape(b, cf, a, ts, hh, ww).permute(0, 1, 3, 2, 4, 5).reshape(b, cf, ts * a, hh, ww)
        slow, fast = self.slow_path.layer4(slow), self.fast_path.layer4(fast)
        return torch.cat((global_pool(fast), global_pool(slow)), dim=1)
