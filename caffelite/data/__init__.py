"""Training data: the sources a Data layer reads (bundled digits, .npz) and the DataTransformer."""
