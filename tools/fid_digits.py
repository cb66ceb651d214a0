"""Show that the FID measures something real: a DCGAN trained on scikit-learn's real digits, its FID
per epoch in the feature space of a digit classifier, against the real-vs-real floor and an
untrained generator's ceiling.

Run from the repository root: python -m tools.fid_digits (about 15 minutes on 2 CPU cores).
Writes its data and runs into --work_dir and the figure to --figure.
"""
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from PIL import Image  # noqa: E402

import config as config_lib  # noqa: E402
import csv_log  # noqa: E402
import devices  # noqa: E402
import metrics  # noqa: E402
import model  # noqa: E402
import run_files  # noqa: E402
from tools import digit_features  # noqa: E402
import trainer  # noqa: E402
import utils  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('work_dir', 'data/fid-digits', 'folder for the classifier, the statistics and '
                    'the run (default data/fid-digits, ignored by git)')
flags.DEFINE_string('figure', '', 'the figure to write (default: fid_digits.png in --work_dir)')
flags.DEFINE_integer('epochs', 10, 'DCGAN epochs (default 10)')
flags.DEFINE_integer('seed', 1, 'seed of the DCGAN run (default 1)')
flags.DEFINE_integer('filters', 1024, 'main.py\'s --filters of the DCGAN (default 1024, the seed\'s)')


def main(_argv):
    devices.configure_tensorflow()
    work = FLAGS.work_dir
    os.makedirs(work, exist_ok=True)
    classifier = os.path.join(work, 'digit_features.keras')
    accuracy = digit_features.train_classifier(classifier)
    images, _ = digit_features.digits_and_labels()
    print('digit classifier: {:.1%} on the 297 held-out digits'.format(accuracy))
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(classifier))
    real, _ = extractor(iter([images]), len(images), 'real digits')
    # floor: two halves of the real digits; ceiling: the generator before training
    floor = metrics.fid(real[::2], real[1::2])
    keras.utils.set_random_seed(FLAGS.seed)
    untrained = model.Gen_Net(1, 100, digit_features.SIZE, filters=FLAGS.filters)
    ceiling = metrics.evaluate(untrained, extractor, metrics.Reference(real), len(images),
                               seed=FLAGS.seed)['fid']
    print('real-vs-real FID (floor) {:.3f}, untrained generator FID (ceiling) {:.3f}'.format(
        floor, ceiling))

    config = config_lib.TrainConfig(ImageType='digits', DisInSize=digit_features.SIZE, filters=FLAGS.filters,
                            BATCH_SIZE=32, epochs=FLAGS.epochs, seed=FLAGS.seed, eval_every=1,
                            eval_samples=len(images), feature_model=classifier,
                            stats_dir=os.path.join(work, 'fid_stats'), resume=False,
                            LOG_PATH=os.path.join(work, 'logs'),
                            MODEL_PATH=os.path.join(work, 'models'),
                            PLOT_PATH=os.path.join(work, 'plot'))
    trainer.train(config)
    files = run_files.RunFiles.of(config)
    table = csv_log.read_csv(files.eval_csv, csv_log.EVAL_COLUMNS)
    final = table['FID'][-1]
    share = (final - floor) / (ceiling - floor)
    print('FID per epoch: ' + ', '.join('{:.2f}'.format(v) for v in table['FID']))
    print('final FID {:.3f}: {:.1%} of the way from the floor to the ceiling'.format(final, share))
    figure = FLAGS.figure or os.path.join(work, 'fid_digits.png')
    draw(table, floor, ceiling, files, figure)
    with open(os.path.join(work, 'summary.json'), 'w') as f:
        json.dump({'classifier_accuracy': accuracy, 'floor': floor, 'ceiling': ceiling,
                   'fid': table['FID'].tolist(), 'share_of_the_way': share}, f, indent=1)
    logging.info('wrote %s', figure)


def draw(table, floor, ceiling, files, path):
    """FID per epoch with floor and ceiling, above the sample grids of four of the epochs."""
    plt = utils.pyplot()
    epochs = table['epoch'] + 1
    shown = sorted({int(e) for e in np.linspace(1, epochs[-1], 4).round()})
    fig = plt.figure(figsize=(10, 7), dpi=100)
    ax = fig.add_axes([0.08, 0.42, 0.88, 0.52])
    ax.plot(epochs, table['FID'], '-o', label='DCGAN on the real digits')
    ax.axhline(ceiling, color='tab:red', linestyle='--', label='untrained generator (ceiling)')
    ax.axhline(floor, color='tab:green', linestyle='--', label='real vs real (floor)')
    ax.axhline(floor + (ceiling - floor) / 5, color='grey', linestyle=':',
               label='a fifth of the way from floor to ceiling')
    ax.set_yscale('log')
    ax.set_xlabel('epoch')
    ax.set_ylabel('FID in a digit classifier\'s features')
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title('FID falls from the ceiling toward the floor as the DCGAN learns digits')
    for i, epoch in enumerate(shown):
        grid = np.asarray(Image.open(files.grid(epoch)))
        tile = fig.add_axes([0.08 + i * 0.225, 0.02, 0.2, 0.3])
        tile.imshow(grid, cmap='gray', vmin=0, vmax=255)
        tile.set_title('epoch {}: FID {:.2f}'.format(epoch, table['FID'][epoch - 1]), fontsize=9)
        tile.axis('off')
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == '__main__':
    app.run(main)
