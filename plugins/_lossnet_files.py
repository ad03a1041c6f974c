"""Weight files of the shared loss networks (torch-free, so a plugin's `__init__` can register them).

Register with `stylefarm_register_weights` returning `LOSSNET_FILES` (several plugins may: names
are unique keys, the last registration wins and they are identical). The normalised VGG-19 of
AdaIN is the existing `adain/vgg` entry; the loss nets reuse it rather than declaring it twice.
"""

from stylefarm.weights import WeightFile

VGG19_FILE = WeightFile(
    name="lossnet/vgg19",
    filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256=None,
    license="torchvision (BSD-3-Clause); VGG-19 weights of Simonyan & Zisserman (CC BY 4.0)",
    note="torchvision's ImageNet VGG-19 (the hash prefix in the name is torchvision's, the full sha256 is "
         "not pinned). Also accepted as `weights:`: Gatys' Caffe-converted vgg_conv.pth and AdaIN's "
         "vgg_normalised.pth (adain/vgg).",
)
VGG16_FILE = WeightFile(
    name="lossnet/vgg16",
    filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    sha256=None,
    license="torchvision (BSD-3-Clause); VGG-16 weights of Simonyan & Zisserman (CC BY 4.0)",
    note="torchvision's ImageNet VGG-16, the loss network of Johnson et al.'s recipe.",
)
NORMALISED_VGG19 = "adain/vgg"  # vgg_normalised.pth, declared by the adain plugin
LOSSNET_FILES = [VGG19_FILE, VGG16_FILE]
