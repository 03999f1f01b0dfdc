"""pycaffe's Python-side modules (caffe.io, Classifier, Detector, coord_map, module state), kept
apart from the core so `caffelite.<name>` can expose them under pycaffe's names."""
