"""torchvision backbones as encoders: the video ResNets ``r3d_18``, ``r2plus1d_18``, ``mc3_18`` (rgb, flow)
and ``resnet18_audio`` (a 2-D ResNet-18 on 1-channel spectrograms).

Built with ``weights=None`` (no download ever); pretrained weights come from a *local* torchvision state dict
(``model.pretrained``) through :func:`mbcd.models.checkpoint.load_pretrained`. The wrapped network is the
child ``net`` (torchvision's video ResNet has a child called ``stem``, which is our method name), so file keys
get a ``net.`` prefix; the classifier ``fc`` is removed and its keys in the file are ignored. For flow
(2 channels) and audio (1 channel) the first conv is rebuilt with the modality's channel count, and an RGB
checkpoint's first-conv weights are averaged over the 3 colour channels and repeated (cross-modality init).

stem = the network up to and including ``layer3``; trunk = ``layer4`` + global average pooling (512-d).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models import resnet18
from torchvision.models import video as tvv

from mbcd.models.checkpoint import CheckpointFormat
from mbcd.models.encoders import Encoder, global_pool
from mbcd.registries import ENCODERS


def _replace_conv(conv: nn.Module, in_channels: int) -> nn.Module:
    """The same conv with ``in_channels`` inputs (fresh He init); unchanged when it already fits."""
    assert isinstance(conv, nn.Conv2d | nn.Conv3d)
    if conv.in_channels == in_channels:
        return conv
    new = type(conv)(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    return new


class _TorchvisionEncoder(Encoder):
    """A torchvision ResNet-style net with ``layer1..4``; subclasses set ``build`` and ``FIRST_CONV``."""

    TRUNK = ("net.layer4",)
    FIRST_CONV = ""  # dotted name inside ``net`` of the input conv
    DIMS = 3

    def __init__(self, modality: str, build: Callable[[], nn.Module]) -> None:
        super().__init__(modality)
        net = build()
        parent_name, _, leaf = self.FIRST_CONV.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        parent._modules[leaf] = _replace_conv(getattr(parent, leaf), self.in_channels)
        del net.fc
        self.net = net
        self.out_dim = 512
        self.CHECKPOINT = CheckpointFormat(
            "torchvision",
            strip=("module.",),
            ignore=("fc.",),
            add="net.",
            adapt_input_conv=f"net.{self.FIRST_CONV}.weight",
        )

    def _check(self, x: Tensor) -> None:
        if x.dim() != self.DIMS + 2 or x.shape[1] != self.in_channels:
            dims = "T, H, W" if self.DIMS == 3 else "F, T"
            raise ValueError(
                f"{type(self).__name__}({self.modality}): expected (B, {self.in_channels}, {dims}), got {tuple(x.shape)}"
            )

    def stem(self, x: Tensor) -> Tensor:
        self._check(x)
        n = self.net
        return n.layer3(n.layer2(n.layer1(n.stem(x))))

    def trunk(self, h: Tensor) -> Tensor:
        return global_pool(self.net.layer4(h))


def _video(name: str, builder: Callable[..., nn.Module], doc: str) -> type[_TorchvisionEncoder]:
    """Define and register one torchvision video encoder class."""

    class VideoEncoder(_TorchvisionEncoder):
        MODALITIES = ("rgb", "flow")
        FIRST_CONV = "stem.0"

        def __init__(self, modality: str) -> None:
            super().__init__(modality, lambda: builder(weights=None))

    VideoEncoder.__name__ = VideoEncoder.__qualname__ = name.upper()
    VideoEncoder.__doc__ = doc
    return ENCODERS.register(name)(VideoEncoder)


R3D18 = _video("r3d_18", tvv.r3d_18, "torchvision R3D-18 (3-D ResNet-18), 512-d.")
R2Plus1D18 = _video("r2plus1d_18", tvv.r2plus1d_18, "torchvision R(2+1)D-18 (factorised 3-D convs), 512-d.")
MC3_18 = _video("mc3_18", tvv.mc3_18, "torchvision MC3-18 (3-D convs in res2, 2-D above), 512-d.")


@ENCODERS.register("resnet18_audio")
class ResNet18Audio(_TorchvisionEncoder):
    """torchvision ResNet-18 with a 1-channel conv1 for spectrograms ``(B, 1, F, T)``, fc removed, 512-d."""

    MODALITIES = ("audio",)
    FIRST_CONV = "conv1"
    DIMS = 2

    def __init__(self, modality: str) -> None:
        super().__init__(modality, lambda: resnet18(weights=None))

    def stem(self, x: Tensor) -> Tensor:
        self._check(x)
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer3(n.layer2(n.layer1(x)))
