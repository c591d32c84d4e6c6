"""SlowOnly-R50 8x8x1 (the paper's flow backbone) as a plain-PyTorch :class:`Encoder`.

Hyper-parameters of ``slowonly_r50_8x8x1_256e_kinetics400_flow_20200704-6b384243.pth`` (mmaction2 0.x config
``slowonly_r50_8x8x1_256e_kinetics400_flow.py`` on ``_base_/models/slowonly_r50.py``): ResNet-50, 2 input
channels, stem kernel 1x7x7, blocks inflated (3x1x1) in res4/res5 only, ``with_pool2=False`` (no temporal
max-pool after res2), no laterals. Input: 8 flow frames; output 2048 after global average pooling.
Built for rgb too (3 channels): that variant has the RGB SlowOnly checkpoint's shapes.

stem = conv1 ... layer3; trunk = layer4 + pooling.
"""

from __future__ import annotations

from torch import Tensor

from mbcd.models.checkpoint import MMACTION
from mbcd.models.encoders import Encoder, global_pool
from mbcd.models.resnet3d import STAGE_BLOCKS, ResNet3dPathway
from mbcd.registries import ENCODERS


@ENCODERS.register("slowonly_r50_flow")
class SlowOnlyR50(Encoder):
    """SlowOnly ResNet-50; parameter names as in mmaction2's ``ResNet3dSlowOnly`` (``conv1.conv.weight`` ...)."""

    MODALITIES = ("flow", "rgb")
    TRUNK = ("layer4",)
    CHECKPOINT = MMACTION

    def __init__(self, modality: str, depth: int = 50) -> None:
        super().__init__(modality)
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"slowonly: depth {depth} not supported; expected one of {sorted(STAGE_BLOCKS)}")
        path = ResNet3dPathway(depth, self.in_channels, 64, (1, 7, 7), (0, 0, 1, 1), lateral=False)
        for name in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"):  # mmaction2 names at top level
            self.add_module(name, getattr(path, name))
        self.out_dim = path.feat_dim

    def stem(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"slowonly_r50({self.modality}): expected (B, {self.in_channels}, T, H, W), got {tuple(x.shape)}"
            )
        return self.layer3(self.layer2(self.layer1(self.maxpool(self.conv1(x)))))

    def trunk(self, h: Tensor) -> Tensor:
        return global_pool(self.layer4(h))
