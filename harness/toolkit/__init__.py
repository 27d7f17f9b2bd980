"""The tools the pipeline uses: TensorFlow setup, training, shrinking, conversion, packaging, measuring, files."""
