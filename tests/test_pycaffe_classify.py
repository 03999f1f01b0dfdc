"""pycaffe's classification flow (examples/00-classification.ipynb) on a real image file, with
OpenCV's blobFromImage + readNetFromCaffe as the independent reference; caffe.Classifier and
caffe.Detector against explicit crops run through OpenCV's net."""
import numpy as np
import pytest

import caffelite as caffe

cv2 = pytest.importorskip("cv2")
Image = pytest.importorskip("PIL.Image")

DEPLOY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 24 dim: 24 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 5 stride: 1
                            weight_filler { type: "gaussian" std: 0.02 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.05 }
                              bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""
MEAN_BGR = np.array([104.0, 117.0, 123.0])


@pytest.fixture
def model(tmp_path):
    caffe.set_random_seed(1701)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    weights = tmp_path / "tiny.caffemodel"
    caffe.Net(str(deploy), caffe.TEST).save(str(weights))
    return str(deploy), str(weights)


@pytest.fixture
def image_file(tmp_path, rng):
    """A 37×45 RGB picture: smooth gradients plus texture, saved as PNG."""
    y, x = np.mgrid[0:37, 0:45]
    pixels = np.stack([x * 5, y * 6, (x + y) * 3], axis=2) % 256
    pixels = (pixels * 0.7 + rng.integers(0, 77, pixels.shape)).astype(np.uint8)
    path = tmp_path / "cat.png"
    Image.fromarray(pixels).save(path)
    return str(path)


def opencv_forward(deploy, weights, blob):
    net = cv2.dnn.readNetFromCaffe(deploy, weights)
    net.setInput(np.ascontiguousarray(blob, dtype=np.float32))
    return net.forward("prob")


def test_classification_flow_matches_opencv(model, image_file):
    model_def, model_weights = model
    net = caffe.Net(model_def,      # defines the structure of the model
                    model_weights,  # contains the trained weights
                    caffe.TEST)     # use test mode (e.g., don't perform dropout)
    mu = MEAN_BGR
    transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
    transformer.set_transpose('data', (2, 0, 1))  # move image channels to outermost dimension
    transformer.set_mean('data', mu)  # subtract the dataset-mean value in each channel
    transformer.set_raw_scale('data', 255)  # rescale from [0, 1] to [0, 255]
    transformer.set_channel_swap('data', (2, 1, 0))  # swap channels from RGB to BGR
    net.blobs['data'].reshape(2, 3, 24, 24)
    image = caffe.io.load_image(image_file)
    transformed_image = transformer.preprocess('data', image)
    net.blobs['data'].data[...] = transformed_image
    output = net.forward()
    output_prob = output['prob'][0]
    top_inds = output_prob.argsort()[::-1][:5]

    bgr = cv2.imread(image_file).astype(np.float32)  # the same file, decoded by OpenCV
    blob = cv2.dnn.blobFromImage(bgr, 1.0, (24, 24), tuple(MEAN_BGR), swapRB=False, crop=False)
    np.testing.assert_allclose(transformed_image, blob[0], rtol=1e-5, atol=1e-3)
    reference = opencv_forward(model_def, model_weights, blob)[0]
    np.testing.assert_allclose(output_prob, reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(top_inds, reference.argsort()[::-1][:5])
    np.testing.assert_allclose(output['prob'][1], output_prob, rtol=1e-6)  # both copies


def explicit_preprocess(crop):
    """H×W×3 RGB [0, 1] -> the net input, written out without caffelite."""
    return crop.transpose(2, 0, 1)[::-1] * 255.0 - MEAN_BGR[:, None, None]


def test_classifier_predict_oversampled_and_centre(model, image_file):
    model_def, model_weights = model
    classifier = caffe.Classifier(model_def, model_weights, image_dims=(28, 30), mean=MEAN_BGR,
                                  raw_scale=255, channel_swap=(2, 1, 0))
    image = caffe.io.load_image(image_file)
    resized = cv2.resize(image, (30, 28), interpolation=cv2.INTER_LINEAR)
    # 10 crops of 24×24 from 28×30: corners, centre (2, 3), then mirrored
    corners = [(0, 0), (0, 6), (4, 0), (4, 6), (2, 3)]
    crops = [resized[y:y + 24, x:x + 24] for y, x in corners]
    crops += [c[:, ::-1] for c in crops]
    batch = np.stack([explicit_preprocess(c) for c in crops])
    reference = opencv_forward(model_def, model_weights, batch)
    predictions = classifier.predict([image, image], oversample=True)
    assert predictions.shape == (2, 10)
    np.testing.assert_allclose(predictions[0], reference.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(predictions[1], predictions[0], rtol=1e-6)
    centre = classifier.predict([image], oversample=False)
    np.testing.assert_allclose(centre[0], reference[4], rtol=1e-4, atol=1e-6)


def test_detector_windows_and_context(model, image_file):
    model_def, model_weights = model
    detector = caffe.Detector(model_def, model_weights, mean=MEAN_BGR, raw_scale=255,
                              channel_swap=(2, 1, 0))
    image = caffe.io.load_image(image_file)
    windows = [(0, 0, 20, 30), (5, 10, 37, 45)]
    detections = detector.detect_windows([(image_file, windows)])
    assert [d["window"] for d in detections] == windows
    assert all(d["filename"] == image_file for d in detections)
    for det, (y0, x0, y1, x1) in zip(detections, windows):
        warped = cv2.resize(image[y0:y1, x0:x1], (24, 24), interpolation=cv2.INTER_LINEAR)
        reference = opencv_forward(model_def, model_weights, explicit_preprocess(warped)[None])
        np.testing.assert_allclose(det["prediction"], reference[0], rtol=1e-4, atol=1e-6)

    padded = caffe.Detector(model_def, model_weights, mean=MEAN_BGR, raw_scale=255,
                            channel_swap=(2, 1, 0), context_pad=3)
    # crop 24, pad 3: windows grow by 24/18. Window (6, 6, 23, 23): 18 rows, half 9, centre 15;
    # box = round(15 ∓ 12) = (3, 3, 27, 27), 25 pixels -> scale 24/25, no padding above;
    # kept rows round(25·24/25) = 24: the image slice [3:27] warped to 24×24.
    inside = padded.crop(image, np.array([6, 6, 23, 23]))
    np.testing.assert_allclose(inside, caffe.io.resize_image(image[3:27, 3:27], (24, 24)))
    # Window (0, 0, 17, 17): centre 9, box (-3, -3, 21, 21), scale 24/25; 3 rows/cols of the
    # crop lie outside (round(3·24/25) = 3) and take the mean in image space (RGB / 255); the
    # rest is the slice [0:21] (22 clipped rows -> round(22·24/25) = 21) warped to 21×21.
    edge = padded.crop(image, np.array([0, 0, 17, 17]))
    mean_rgb = (MEAN_BGR[::-1] / 255).astype(np.float32)
    np.testing.assert_allclose(edge[:3], np.broadcast_to(mean_rgb, (3, 24, 3)), rtol=1e-6)
    np.testing.assert_allclose(edge[:, :3], np.broadcast_to(mean_rgb, (24, 3, 3)), rtol=1e-6)
    np.testing.assert_allclose(edge[3:, 3:], caffe.io.resize_image(image[0:21, 0:21], (21, 21)))
    with pytest.raises(caffe.CaffeliteError, match="selective search"):
        detector.detect_selective_search([image_file])
