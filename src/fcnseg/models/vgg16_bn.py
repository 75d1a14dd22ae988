"""torchvision's ``vgg16_bn`` weights load into the VGG16-BN FCNs by :mod:`fcnseg.models.weights`.
This module keeps the name the documentation gave the loader."""

from fcnseg.models.weights import load_vgg16_bn_weights

__all__ = ["load_vgg16_bn_weights"]
