"""The Keras layers of the networks: the CNN text encoder, the decoder cell, Luong attention."""
