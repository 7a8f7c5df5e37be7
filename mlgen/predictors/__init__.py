"""One module per model type (`cnn_rnn`, `cnn_br`, `linear_br`): its `Predictor` fits,
saves, loads and predicts. `mlgen.registry` is the table that names them; nothing here is
imported until a type is used, so linear-br never imports TensorFlow.
"""
