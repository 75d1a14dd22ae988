"""Loading torchvision's ``vgg16_bn`` weights into the VGG16-BN FCNs: the loader lives in
:mod:`fcnseg.models.weights`; this module keeps the name the documentation gave it."""

from fcnseg.models.weights import load_vgg16_bn_weights

__all__ = ["load_vgg16_bn_weights"]
