"""3-D ResNet building blocks whose parameter names match OpenMMLab mmaction2 checkpoints.

Plain PyTorch (no mmcv): a conv-BN(-ReLU) unit is a module with children ``conv`` and ``bn`` (mmcv's
``ConvModule`` naming), a bottleneck has ``conv1``/``conv2``/``conv3`` and an optional ``downsample``, a
pathway has ``conv1``, ``maxpool``, ``layer1`` ... ``layer4`` and, for the SlowFast slow pathway, the lateral
convolutions ``conv1_lateral`` and ``layer{1,2,3}_lateral`` (conv only: mmaction2's default
``lateral_norm=False``). So a state dict saved by mmaction2 0.x/1.x for ``ResNet3dSlowFast`` /
``ResNet3dSlowOnly`` loads into these modules key for key after its ``backbone.`` prefix is stripped.

Architecture (read from mmaction2's ``resnet3d.py``/``resnet3d_slowfast.py``, written anew here): ResNet-50/101
bottlenecks in 'pytorch' style (the stride sits in the 3x3 conv); an *inflated* block uses a 3x1x1 first conv
(temporal), a non-inflated one 1x1x1; spatial strides (1, 2, 2, 2), no temporal strides; stem conv stride
(1, 2, 2) + max-pool (1, 3, 3) stride (1, 2, 2). A lateral-receiving pathway widens each stage's first block
input by ``2 * inplanes // channel_ratio`` channels (the time-strided fast features).
"""

from __future__ import annotations

from torch import Tensor, nn

STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4  # bottleneck output channels = 4 x planes


class ConvBN(nn.Module):
    """Conv3d (no bias) -> optional BatchNorm3d -> optional ReLU; children named ``conv``/``bn`` as in mmcv."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        norm: bool = True,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(cout) if norm else None
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Bottleneck3d(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, x4 expansion), inflated to 3x1x1 in the first conv when asked."""

    def __init__(self, cin: int, planes: int, spatial_stride: int = 1, inflate: bool = True) -> None:
        super().__init__()
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvBN(cin, planes, k1, padding=p1)
        self.conv2 = ConvBN(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1))
        self.conv3 = ConvBN(planes, planes * EXPANSION, (1, 1, 1), relu=False)
        self.downsample: ConvBN | None = None
        if spatial_stride != 1 or cin != planes * EXPANSION:
            s = (1, spatial_stride, spatial_stride)
            self.downsample = ConvBN(cin, planes * EXPANSION, (1, 1, 1), stride=s, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


def make_res_layer(cin: int, planes: int, blocks: int, spatial_stride: int, inflate: bool) -> nn.Sequential:
    """One ResNet stage: the first block changes width/stride, the rest keep it."""
    layers = [Bottleneck3d(cin, planes, spatial_stride, inflate)]
    layers += [Bottleneck3d(planes * EXPANSION, planes, 1, inflate) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet3dPathway(nn.Module):
    """A 3-D ResNet-50/101 pathway (mmaction2 ``ResNet3dPathway`` naming), optionally receiving laterals.

    Args:
        depth: 50, 101 or 152.
        in_channels: input channels (3 rgb, 2 flow).
        base_channels: width of the stem (64 slow/SlowOnly, 8 fast).
        conv1_kernel: stem kernel (1, 7, 7) slow / (5, 7, 7) fast.
        inflate: per stage, whether blocks use the 3x1x1 temporal first conv.
        lateral: build the lateral convs that fuse the fast pathway into this one.
        channel_ratio, speed_ratio, fusion_kernel: SlowFast's beta_inv, alpha and lateral temporal kernel.
    """

    def __init__(
        self,
        depth: int = 50,
        in_channels: int = 3,
        base_channels: int = 64,
        conv1_kernel: tuple[int, int, int] = (1, 7, 7),
        inflate: tuple[int, int, int, int] = (0, 0, 1, 1),
        lateral: bool = False,
        channel_ratio: int = 8,
        speed_ratio: int = 4,
        fusion_kernel: int = 7,
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"ResNet3dPathway: depth {depth} not supported; expected one of {sorted(STAGE_BLOCKS)}")
        self.lateral = lateral
        pad = tuple((k - 1) // 2 for k in conv1_kernel)
        self.conv1 = ConvBN(in_channels, base_channels, conv1_kernel, stride=(1, 2, 2), padding=pad)  # type: ignore[arg-type]
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        lat_kw = {"stride": (speed_ratio, 1, 1), "padding": ((fusion_kernel - 1) // 2, 0, 0), "norm": False}
        if lateral:  # fast stem (base // ratio channels) -> 2x that, time-strided by alpha
            c = base_channels // channel_ratio
            self.conv1_lateral = ConvBN(c, 2 * c, (fusion_kernel, 1, 1), relu=False, **lat_kw)
        inplanes = base_channels
        for i, blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = base_channels * 2**i
            cin = inplanes + (2 * inplanes // channel_ratio if lateral else 0)
            layer = make_res_layer(cin, planes, blocks, 1 if i == 0 else 2, bool(inflate[i]))
            self.add_module(f"layer{i + 1}", layer)
            inplanes = planes * EXPANSION
            if lateral and i < 3:  # no lateral after the last stage
                c = inplanes // channel_ratio
                self.add_module(f"layer{i + 1}_lateral", ConvBN(c, 2 * c, (fusion_kernel, 1, 1), relu=False, **lat_kw))
        self.feat_dim = inplanes
        init_weights(self)

    def stem_stage(self, x: Tensor) -> Tensor:
        """conv1 + max-pool."""
        return self.maxpool(self.conv1(x))


def init_weights(module: nn.Module) -> None:
    """He init for convs, BN weight 1 / bias 0, and zero gamma in each bottleneck's last BN (mmaction2's
    ``zero_init_residual``), so a from-scratch residual block starts as the identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, Bottleneck3d) and m.conv3.bn is not None:
            nn.init.zeros_(m.conv3.bn.weight)
