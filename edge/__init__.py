"""face-edge on the device: Haar face detection, quantized TFLite face models, live overlay.

Never imports TensorFlow (tf.lite is only the last-resort runtime fallback).
"""
__version__ = "0.1.0"
