"""Pretrained models: the reference's .caffemodel files, published weights, and the Hub."""
