"""Make the offline feature model for FID on digits: a small CNN trained on 1,500 of
scikit-learn's real digits (with shifts, rotations and zooms, and Dropout), saved as a
--feature_model (64 features, 10 class probabilities); the other 297 digits measure it.

Run from the repository root: python -m tools.digit_features [--out=PATH] (2 to 3 minutes on 2 CPU
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
EPOCHS = 30  # of the model tools/recipes.py measures with

FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'data/digit_features.keras', 'where to save the feature model (default '
                    'data/digit_features.keras, ignored by git)')
flags.DEFINE_integer('classifier_epochs', EPOCHS, 'epochs of training over the 1,500 digits '
                     '(default 30, as tools/recipes.py trains it)', lower_bound=1)


def digits_and_labels():
    """The 1,797 digits as float32 [N, 32, 32, 1] in [-1, 1], and their classes [N]."""
    return np.stack(list(dataset.load_digits(SIZE).as_numpy_iterator())), load_digits().target


def train_classifier(path, epochs=EPOCHS):
    """Train the digit CNN on the first 1,500 digits, save it to path as a feature model; returns
    its accuracy on the other 297."""
    images, labels = digits_and_labels()
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input([SIZE, SIZE, 1])
    for filters in (32, 64):
        # state size: 16x16x32, then 8x8x64
        x = keras.layers.Conv2D(filters, 3, padding='same', activation='relu')(x)
        x = keras.layers.Conv2D(filters, 3, padding='same', activation='relu')(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)  # where the strokes are matters: no global pooling
    x = keras.layers.Dropout(0.5)(x)
    features = keras.layers.Dense(64, activation='relu', name='features')(x)
    x = keras.layers.Dropout(0.3)(features)
    probabilities = keras.layers.Dense(10, activation='softmax', name='probabilities')(x)
    net = keras.Model(inputs, [features, probabilities])
    # what a writer varies: a shift of 2 px, 10 degrees, 10% of the size; fill with the background
    augmentation = keras.Sequential([
        keras.layers.RandomTranslation(1 / 16, 1 / 16, fill_mode='constant', fill_value=-1.0),
        keras.layers.RandomRotation(10 / 360, fill_mode='constant', fill_value=-1.0),
        keras.layers.RandomZoom(0.1, fill_mode='constant', fill_value=-1.0)])
    trained = keras.Input([SIZE, SIZE, 1])
    training = keras.Model(trained, net(augmentation(trained))[1])
    training.compile(keras.optimizers.Adam(1e-3), 'sparse_categorical_crossentropy',
                     metrics=['accuracy'])
    training.fit(images[:TRAINED], labels[:TRAINED], epochs=epochs, batch_size=64, verbose=0)
    accuracy = training.evaluate(images[TRAINED:], labels[TRAINED:], verbose=0)[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    net.save(path)
    return accuracy


def main(_argv):
    devices.configure_tensorflow()
    accuracy = train_classifier(FLAGS.out, FLAGS.classifier_epochs)
    print('wrote {}: a digit classifier, {:.1%} right on the {} digits it did not learn from; '
          'pass it as --feature_model={}'.format(FLAGS.out, accuracy, 1797 - TRAINED, FLAGS.out))


if __name__ == '__main__':
    app.run(main)
