"""Export a built net to ONNX (onnx_export.py); one converter module per layer family.

vision.py (Convolution, Deconvolution, Im2col, Pooling, SPP), normalization.py (LRN,
BatchNorm, MVN, Scale, Bias), neurons.py (activations, Dropout), structure.py (InnerProduct,
Embed, Concat, Slice, Reshape, Crop, Eltwise, Softmax, ArgMax ...), recurrent.py (RNN, LSTM,
LSTMUnit). The onnx package is imported only when a model is built.
"""
from .onnx_export import build_model, export_onnx
from .onnx_graph import DEFAULT_OPSET, ExportError

__all__ = ["DEFAULT_OPSET", "ExportError", "build_model", "export_onnx"]
