"""VGGSound ResNet-18 (the paper's audio backbone) as a plain-PyTorch :class:`Encoder`.

hche11/VGGSound's audio network (``AVENet.audnet``, model "H", avg-pool aggregation) is a standard 2-D
ResNet-18 whose first conv takes one spectrogram channel (7x7, stride 2, no bias); its layer names are those
of torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``layer4.1.bn2``). We therefore build it
from torchvision's ``resnet18`` with a 1-channel ``conv1`` and no classifier, and keep the children at the top
level so that ``H.pth.tar`` (``{'model_state_dict': {'audnet.conv1.weight': ...}}``) loads after the
``audnet.`` prefix is stripped; its 309-class ``audnet.fc`` is ignored.

Input ``(B, 1, F, T)``: F frequency bins (257 for the protocol's 512-sample window), T frames (~1004 for
10 s at 16 kHz with 353 overlap). Output 512. stem = conv1 ... layer3; trunk = layer4 + global average pool.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import resnet18

from mbcd.models.checkpoint import VGGSOUND
from mbcd.models.encoders import Encoder, global_pool
from mbcd.registries import ENCODERS


def resnet18_children(in_channels: int) -> dict[str, nn.Module]:
    """torchvision ResNet-18 (random init) with an ``in_channels`` first conv, as named children, no ``fc``."""
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return {n: getattr(net, n) for n in names}


@ENCODERS.register("vggsound_resnet18")
class VGGSoundResNet18(Encoder):
    """ResNet-18 on 1-channel spectrograms with VGGSound ``H.pth.tar`` parameter names."""

    MODALITIES = ("audio",)
    TRUNK = ("layer4",)
    CHECKPOINT = VGGSOUND

    def __init__(self, modality: str) -> None:
        super().__init__(modality)
        for name, child in resnet18_children(self.in_channels).items():
            self.add_module(name, child)
        self.out_dim = 512

    def stem(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"vggsound_resnet18: expected (B, 1, F, T), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def trunk(self, h: Tensor) -> Tensor:
        return global_pool(self.layer4(h))
