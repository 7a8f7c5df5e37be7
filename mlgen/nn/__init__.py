"""The networks and everything TensorFlow: preprocessing, layers, the CNN backbone, the
label-sequence and binary-relevance tasks, decoding, inference and the one training loop.

The only package that imports TensorFlow (and Keras).
"""
