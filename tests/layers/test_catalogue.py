"""Every layer type of Caffe 1.0's catalogue (and the later Clip and Swish) is registered;
ImageData arrives with the image-list reader."""
import caffelite

CAFFE_TYPES = """
AbsVal Accuracy ArgMax BNLL BatchNorm BatchReindex Bias Clip Concat ContrastiveLoss Convolution
Crop Data Deconvolution Dropout DummyData ELU Eltwise Embed EuclideanLoss Exp Filter Flatten
HDF5Data HDF5Output HingeLoss Im2col ImageData InfogainLoss InnerProduct Input LRN LSTM LSTMUnit
Log MVN MemoryData MultinomialLogisticLoss PReLU Parameter Pooling Power Python RNN ReLU
Reduction Reshape SPP Scale Sigmoid SigmoidCrossEntropyLoss Silence Slice Softmax
SoftmaxWithLoss Split Swish TanH Threshold Tile WindowData
""".split()


def test_caffes_layer_types_are_registered():
    assert len(set(CAFFE_TYPES)) == 61
    missing = set(CAFFE_TYPES) - set(caffelite.layer_type_list())
    assert missing <= {"ImageData"}, sorted(missing)
