"""Settings the entry points share, without TensorFlow: their flags parse, and answer --help or a
mistake, before it loads (5 s). The start of the one place every setting is declared."""

# --mixed_precision: Keras' global policy of each precision; auto picks one for the machine
POLICIES = {'none': 'float32', 'bf16': 'mixed_bfloat16', 'fp16': 'mixed_float16'}
PRECISIONS = list(POLICIES) + ['auto']

# the feature models of the FID: Keras' InceptionV3 weights and TTUR's 2015 Inception graph
INCEPTION_FILE = 'inception_v3_weights_tf_dim_ordering_tf_kernels.h5'
INCEPTION_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/'
                 + INCEPTION_FILE)
GRAPH_FILE = 'classify_image_graph_def.pb'
GRAPH_URL = 'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz'
