"""Binary-relevance baselines: one independent yes/no decision per label.

`cnn_br` shares the CNN-RNN model's encoder and training loop; `linear` is TF-IDF and
scikit-learn only (it never imports TensorFlow).
"""
