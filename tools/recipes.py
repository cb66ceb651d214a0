"""Measure training recipes by FID: the seed's recipe, +EMA, +DiffAugment, both, and TTUR, on
scikit-learn's 1,797 real digits and on a 300-digit subset, several seeds each, the same number of
steps for every recipe, with the FID of every epoch in a digit classifier's features.

Run from the repository root: python -m tools.recipes (about 2.5 hours on 2 CPU cores; runs
already finished in --work_dir are read, not trained again, so it can be stopped and rerun, and
two processes with different --seeds share the work). --report only reads what is there.
"""
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

import arrays  # noqa: E402
import config  # noqa: E402
import csv_log  # noqa: E402
import dataset  # noqa: E402
import devices  # noqa: E402
import hooks  # noqa: E402
import metrics  # noqa: E402
import run_files  # noqa: E402
from tools import digit_features  # noqa: E402
import trainer  # noqa: E402
import utils  # noqa: E402

SUBSET, REPEATS = 300, 6
EMA = dict(ema=0.999)
AUGMENT = dict(augment='color,translation,cutout')
# the best of three TTUR settings in the one-seed search: a slower D, not a faster one
TTUR = dict(lr_D=1e-4)
# found in a one-seed search (docs/recipes.md): no decay, no Dropout in D, and the average
TUNED = dict(EMA, lr_decay_epochs='', dropout=0.0)
# each recipe's changes to the seed's flags
RECIPES = {
    'seed': {},
    'ema': EMA,
    'augment': AUGMENT,
    'ema+augment': dict(EMA, **AUGMENT),
    'tuned': TUNED,
    'tuned+augment': dict(TUNED, **AUGMENT),
    'ttur': TTUR,
    'tuned+ttur': dict(TUNED, **TTUR),
}


FLAGS = flags.FLAGS
flags.DEFINE_string('work_dir', 'data/recipes', 'folder for the data, runs and results (default '
                    'data/recipes, ignored by git)')
flags.DEFINE_list('recipes', list(RECIPES), 'recipes to train, from {} (default: all)'.format(
    ', '.join(RECIPES)))
flags.DEFINE_list('datasets', ['digits', 'subset300'], 'digits (all 1,797) and subset300 (300 of '
                  'them, each repeated 6 times so that an epoch has as many steps) (default both)')
flags.DEFINE_list('seeds', ['1', '2', '3'], 'seeds of the runs (default 1,2,3)')
flags.DEFINE_integer('epochs', 30, 'epochs of 57 steps for every recipe (default 30)')
flags.DEFINE_integer('filters', 256, 'main.py\'s --filters (default 256)')
flags.DEFINE_boolean('report', False, 'only read the finished runs and write the table and figure')
flags.DEFINE_string('figure', '', 'the figure to write (default: recipes.png in --work_dir)')
flags.DEFINE_list('pytorch_samples', [], 'npz files of tools/pytorch_dcgan.py, named '
                  '{dataset}_s{seed}.npz, to report beside the recipes as pytorch/examples '
                  '(default: none)')

def subset_npz(path):
    """A Keras-layout mnist.npz of 300 of the real digits (a seeded draw), each 6 times."""
    digits = arrays.read_digits()
    chosen = np.random.default_rng(0).permutation(len(digits))[:SUBSET]
    np.savez(path, x_train=np.tile(digits[chosen], (REPEATS, 1, 1)), y_train=np.zeros(
        SUBSET * REPEATS, np.uint8), x_test=digits[:1], y_test=np.zeros(1, np.uint8))
    return path


def run_config(name, data, seed):
    """The Config of one run: recipe name on dataset data with seed, in its own folder."""
    folder = os.path.join(FLAGS.work_dir, 'runs', data, name, 'seed{}'.format(seed))
    # 4 steps per loop: 1.4x the speed of 1 on a CPU at this width, the same numbers
    settings = dict(DisInSize=digit_features.SIZE, filters=FLAGS.filters, BATCH_SIZE=32,
                    epochs=FLAGS.epochs, seed=seed, tensorboard=False, save_every=FLAGS.epochs,
                    steps_per_loop=4,
                    LOG_PATH=os.path.join(folder, 'logs'), MODEL_PATH=os.path.join(folder, 'models'),
                    PLOT_PATH=os.path.join(folder, 'plot'))
    if data == 'digits':
        settings['ImageType'] = 'digits'
    else:
        settings.update(ImageType='MNIST', mnist_path=os.path.join(FLAGS.work_dir, 'subset300.npz'))
    settings.update(RECIPES[name])
    return config.TrainConfig(**settings)


def train_all(extractor, reference):
    """Train (or resume) every run asked for, each evaluated every epoch against reference."""
    for data in FLAGS.datasets:
        for name in FLAGS.recipes:
            for seed in map(int, FLAGS.seeds):
                config = run_config(name, data, seed)
                logging.info('recipe %s on %s, seed %d', name, data, seed)
                evaluation = hooks.Evaluation(1, len(reference.features), reference=reference,
                                              extractor=extractor)
                trainer.train(config, [evaluation])


def results():
    """{(dataset, recipe): [FID per epoch of each finished seed]}."""
    found = {}
    for data in FLAGS.datasets:
        for name in FLAGS.recipes:
            for seed in map(int, FLAGS.seeds):
                path = run_files.RunFiles.of(run_config(name, data, seed)).eval_csv
                if os.path.isfile(path):
                    fid = csv_log.read_csv(path, csv_log.EVAL_COLUMNS)['FID']
                    if len(fid) == FLAGS.epochs:
                        found.setdefault((data, name), []).append(fid)
    return found


def pytorch_results(extractor, reference):
    """{(dataset, 'pytorch/examples'): [FID every 5 epochs of each seed]} of --pytorch_samples."""
    found = {}
    for path in FLAGS.pytorch_samples:
        data = os.path.basename(path).rsplit('_s', 1)[0]
        with np.load(path) as samples:
            keys = sorted(samples.files, key=lambda k: int(k[4:]))
            fids = [metrics.fid(reference.features, extractor(iter([samples[k]]), len(samples[k]),
                                                              k)[0]) for k in keys]
        found.setdefault((data, 'pytorch/examples'), []).append(np.array(fids))
    return found


def report(found, floor):
    """Print the Markdown table of final and best FID, mean +- std over seeds, and the ratios."""
    print('\nFID in the digit classifier\'s features (real-vs-real floor {:.2f}), mean +- std over '
          'seeds, after {} epochs:\n'.format(floor, FLAGS.epochs))
    print('| dataset | recipe | seeds | final FID | best FID | final / seed recipe |')
    print('| --- | --- | ---: | ---: | ---: | ---: |')
    summary = {}
    for (data, name), runs in found.items():
        runs = np.array(runs)
        final, best = runs[:, -1], runs.min(axis=1)
        base = found.get((data, 'seed'))
        ratio = final.mean() / np.array(base)[:, -1].mean() if base else float('nan')
        # pytorch/examples' samples are every 5 epochs, so their best is over fewer points
        summary['{}/{}'.format(data, name)] = {
            'final_mean': final.mean(), 'final_std': final.std(), 'best_mean': best.mean(),
            'best_std': best.std(), 'seeds': len(runs), 'ratio_to_seed': ratio,
            'fid_per_epoch_mean': runs.mean(axis=0).tolist()}
        print('| {} | {} | {} | {:.1f} +- {:.1f} | {:.1f} +- {:.1f} | {:.2f} |'.format(
            data, name, len(runs), final.mean(), final.std(), best.mean(), best.std(), ratio))
    return summary


def draw(found, floor, path):
    """FID per epoch, mean over seeds with the spread shaded, one panel per dataset."""
    plt = utils.pyplot()
    datasets = sorted({data for data, _ in found}, reverse=True)
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), dpi=100,
                             squeeze=False)
    for ax, data in zip(axes[0], datasets):
        for index, name in enumerate(list(FLAGS.recipes) + ['pytorch/examples']):
            if (data, name) not in found:
                continue
            runs = np.array(found[(data, name)])
            step = FLAGS.epochs // runs.shape[1]
            epochs = np.arange(1, runs.shape[1] + 1) * step
            color = 'C{}'.format(index % 10)  # a recipe has the same colour in both panels
            ax.plot(epochs, runs.mean(axis=0), color=color, label='{} ({} seed{})'.format(
                name, len(runs), 's' if len(runs) > 1 else ''))
            ax.fill_between(epochs, runs.min(axis=0), runs.max(axis=0), alpha=0.15, color=color)
        ax.axhline(floor, color='grey', linestyle=':', label='real vs real (floor)')
        ax.set_yscale('log')
        ax.set_title('{}: {}'.format(data, 'all 1,797 digits' if data == 'digits' else
                                     '300 digits'))
        ax.set_xlabel('epoch (57 steps of 32)')
        ax.set_ylabel('FID (digit classifier features)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(_argv):
    devices.configure_tensorflow()
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    classifier = os.path.join(FLAGS.work_dir, 'digit_features.keras')
    if not os.path.isfile(classifier):
        digit_features.train_classifier(classifier)
    if not os.path.isfile(os.path.join(FLAGS.work_dir, 'subset300.npz')):
        subset_npz(os.path.join(FLAGS.work_dir, 'subset300.npz'))
    # the same images at 32 px for tools/pytorch_dcgan.py
    sources = {'digits': lambda: dataset.load_digits(digit_features.SIZE),
               'subset300': lambda: dataset.load_mnist(
                   os.path.join(FLAGS.work_dir, 'subset300.npz'), digit_features.SIZE)}
    for name, load in sources.items():
        out = os.path.join(FLAGS.work_dir, name + '_32px.npz')
        if not os.path.isfile(out):
            np.savez(out, images=np.stack(list(load().as_numpy_iterator())))
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(classifier))
    images = np.stack(list(dataset.load_digits(digit_features.SIZE).as_numpy_iterator()))
    real, _ = extractor(iter([images]), len(images), 'real digits')
    reference = metrics.Reference(real)
    floor = metrics.fid(real[::2], real[1::2])
    if not FLAGS.report:
        train_all(extractor, reference)
    found = {**results(), **pytorch_results(extractor, reference)}
    summary = report(found, floor)
    figure = FLAGS.figure or os.path.join(FLAGS.work_dir, 'recipes.png')
    draw(found, floor, figure)
    with open(os.path.join(FLAGS.work_dir, 'summary.json'), 'w') as f:
        json.dump({'floor': floor, 'epochs': FLAGS.epochs, 'filters': FLAGS.filters,
                   'runs': summary}, f, indent=1)
    print('\nwrote {} and {}'.format(figure, os.path.join(FLAGS.work_dir, 'summary.json')))


if __name__ == '__main__':
    app.run(main)
