"""Make the offline feature model for FID on digits: a small CNN trained on 1,500 of
scikit-learn's real digits, saved as a --feature_model (64 features, 10 class probabilities).

Run from the repository root: python -m tools.digit_features [--out=PATH] (about 30 s on 2 CPU
cores), then e.g. python evaluate.py --model=... --ImageType=digits --feature_model=PATH.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import dataset  # noqa: E402
import devices  # noqa: E402

SIZE = 32  # the side the digits are trained and measured at
TRAINED = 1500  # digits the classifier learns from; the other 297 measure its accuracy
EPOCHS = 15  # of the model tools/recipes.py measures with

FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'data/digit_features.keras', 'where to save the feature model (default '
                    'data/digit_features.keras, ignored by git)')
flags.DEFINE_integer('classifier_epochs', EPOCHS, 'epochs of training over the 1,500 digits '
                     '(default 15, as tools/recipes.py trains it)', lower_bound=1)


def train_classifier(path, epochs=EPOCHS):
    """Train the digit CNN, save it to path as a feature model; returns (held-out accuracy, the
    1,797 digits as float32 [N, 32, 32, 1] in [-1, 1])."""
    images = np.stack(list(dataset.load_digits(SIZE).as_numpy_iterator()))
    labels = load_digits().target
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input([SIZE, SIZE, 1])
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding='same', activation='relu')(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)  # where the strokes are matters: no global pooling
    features = keras.layers.Dense(64, activation='relu', name='features')(x)
    probabilities = keras.layers.Dense(10, activation='softmax', name='probabilities')(features)
    training = keras.Model(inputs, probabilities)
    training.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])
    training.fit(images[:TRAINED], labels[:TRAINED], epochs=epochs, batch_size=64, verbose=0)
    accuracy = training.evaluate(images[TRAINED:], labels[TRAINED:], verbose=0)[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    keras.Model(inputs, [features, probabilities]).save(path)
    return accuracy, images


def main(_argv):
    devices.configure_tensorflow()
    accuracy, _ = train_classifier(FLAGS.out, FLAGS.classifier_epochs)
    print('wrote {}: a digit classifier, {:.1%} right on the {} digits it did not learn from; '
          'pass it as --feature_model={}'.format(FLAGS.out, accuracy, 1797 - TRAINED, FLAGS.out))


if __name__ == '__main__':
    app.run(main)
