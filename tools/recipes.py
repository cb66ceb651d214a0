"""Measure training recipes by FID: the seed's recipe, the quick start's and the discriminator
recipes beside it, on the 1,500 digits the feature classifier learned from and on 300 of them,
several seeds each, the same number of steps for every recipe. After every epoch, 1,000 samples
are scored in a digit classifier's features (tools/digit_features.py) against the 1,500
training digits and against the 297 held-out digits that neither network learned from.

Run from the repository root: python -m tools.recipes (a run took 4 to 20 minutes on 2 CPU
cores shared with other runs; runs already finished in --work_dir are read, not trained again,
so it can be stopped and rerun, and two processes with different --seeds or --recipes share the
work). --report only reads.
"""
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

import arrays  # noqa: E402
import conditions  # noqa: E402
import config  # noqa: E402
import dataset  # noqa: E402
import devices  # noqa: E402
import files  # noqa: E402
import hooks  # noqa: E402
import metrics  # noqa: E402
from tools import digit_features  # noqa: E402
import trainer  # noqa: E402
import utils  # noqa: E402

SUBSET, SAMPLES = 300, 1000
# each dataset: how many of the 1,500 training digits, repeated how often
DATASETS = {'digits': (1500, 1), 'subset300': (SUBSET, 5)}
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
    'tuned+ttur': dict(TUNED, **TTUR),  # the previous quick start's
}
# the discriminator recipes of the literature on top of tuned+ttur: spectral norm (and no
# BatchNorm) in D, the hinge loss with it (SN-GAN), R1 with gamma 0.01 (StyleGAN2-ADA's CIFAR-10
# value; its heuristic 0.0002 * 32^2 / 32 gives 0.0064), least squares
TUNED_TTUR = RECIPES['tuned+ttur']
RECIPES.update({
    'tuned+ttur+sn': dict(TUNED_TTUR, spectral_norm=True),
    'tuned+ttur+sn+hinge': dict(TUNED_TTUR, spectral_norm=True, loss='hinge'),
    'tuned+ttur+r1': dict(TUNED_TTUR, r1=0.01),
    'tuned+ttur+ls': dict(TUNED_TTUR, loss='ls'),
})
# pytorch/examples' differences from the seed: its networks (with which --dropout has no layer to
# act on), its update order, and its recipe in this trainer (D at G's rate), averaged; then what
# might add to its networks
DCGAN = dict(arch='dcgan')
ALTERNATING = dict(update_order='alternating')
# both rates of tuned+ttur doubled, D still at half G's (the quick start's, with R1)
FAST = dict(lr=4e-4, lr_D=2e-4)
RECIPES.update({
    'tuned+ttur+dcgan': dict(TUNED_TTUR, **DCGAN),  # the quick start's
    'tuned+ttur+dcgan+alternating': dict(TUNED_TTUR, **DCGAN, **ALTERNATING),
    'tuned+dcgan': dict(TUNED, **DCGAN),
    'tuned+dcgan+alternating': dict(TUNED, **DCGAN, **ALTERNATING),
    'tuned+ttur+dcgan+r1': dict(TUNED_TTUR, **DCGAN, r1=0.01),
    'tuned+ttur+dcgan+augment': dict(TUNED_TTUR, **DCGAN, **AUGMENT),
    # the discriminator recipes again on the quick start's networks, and its rates doubled
    'tuned+ttur+dcgan+sn': dict(TUNED_TTUR, **DCGAN, spectral_norm=True),
    'tuned+ttur+dcgan+sn+hinge': dict(TUNED_TTUR, **DCGAN, spectral_norm=True, loss='hinge'),
    'tuned+ttur+dcgan+ls': dict(TUNED_TTUR, **DCGAN, loss='ls'),
    'tuned+ttur+dcgan+fast': dict(TUNED_TTUR, **DCGAN, **FAST),
    'tuned+ttur+dcgan+faster': dict(TUNED_TTUR, **DCGAN, lr=8e-4, lr_D=4e-4),
    'tuned+ttur+dcgan+fast+r1': dict(TUNED_TTUR, **DCGAN, **FAST, r1=0.01),
    'tuned+ttur+dcgan+fast+augment': dict(TUNED_TTUR, **DCGAN, **AUGMENT, **FAST),
    # SN-GAN's rates: D at G's
    'tuned+dcgan+sn': dict(TUNED, **DCGAN, spectral_norm=True),
    'tuned+dcgan+sn+hinge': dict(TUNED, **DCGAN, spectral_norm=True, loss='hinge'),
})
# the quick start's recipe conditioned on the digits' classes, in each way (--conditioning)
QUICK_START = RECIPES['tuned+ttur+dcgan+fast+r1']
RECIPES.update({
    'quick+projection': dict(QUICK_START, conditional=True, conditioning='projection'),
    'quick+concat': dict(QUICK_START, conditional=True, conditioning='concat'),
})


FLAGS = flags.FLAGS
flags.DEFINE_string('work_dir', 'data/recipes', 'folder for the data, runs and results (default '
                    'data/recipes, ignored by git)')
flags.DEFINE_list('recipes', list(RECIPES), 'recipes to train, from {} (default: all)'.format(
    ', '.join(RECIPES)))
flags.DEFINE_list('datasets', list(DATASETS), 'digits (the classifier\'s 1,500 training digits) '
                  'and subset300 (300 of them, each repeated 5 times so that an epoch has as many '
                  'steps) (default both)')
flags.DEFINE_list('seeds', ['1', '2', '3'], 'seeds of the runs (default 1,2,3)')
flags.DEFINE_integer('epochs', 30, 'epochs of 47 steps for every recipe (default 30)')
flags.DEFINE_integer('filters', 256, 'main.py\'s --filters (default 256)')
flags.DEFINE_boolean('report', False, 'only read the finished runs and write the table and figure')
flags.DEFINE_string('figure', '', 'the figure to write (default: recipes.png in --work_dir)')
flags.DEFINE_boolean('nearest', False, 'also print how far 1,000 samples of each finished seed-1 '
                     'run on the digits are, in pixels, from their nearest training digit, beside '
                     'the held-out digits\' distance: are samples copies? (default False)')
flags.DEFINE_list('pytorch_samples', [], 'npz files of tools/pytorch_dcgan.py, named '
                  '{dataset}_s{seed}.npz, to report beside the recipes as pytorch/examples, '
                  'and with an average of its generator (default: none)')

def digits_npz(path, count, repeats):
    """A Keras-layout mnist.npz of count of the classifier's 1,500 training digits (all, or a
    seeded draw) and their classes, each repeats times, so that every dataset has the epochs of
    1,500 digits."""
    digits, labels = arrays.read_digits(labels=True)
    chosen = np.sort(np.random.default_rng(0).permutation(digit_features.TRAINED)[:count])
    np.savez(path, x_train=np.tile(digits[chosen], (repeats, 1, 1)),
             y_train=np.tile(labels[chosen], repeats).astype(np.uint8), x_test=digits[:1],
             y_test=labels[:1].astype(np.uint8))


def run_config(name, data, seed):
    """The Config of one run: recipe name on dataset data with seed, in its own folder."""
    folder = os.path.join(FLAGS.work_dir, 'runs', data, name, 'seed{}'.format(seed))
    # 4 steps per loop: 1.4x the speed of 1 on a CPU at this width, the same numbers
    settings = dict(DisInSize=digit_features.SIZE, filters=FLAGS.filters, BATCH_SIZE=32,
                    epochs=FLAGS.epochs, seed=seed, tensorboard=False, save_every=FLAGS.epochs,
                    steps_per_loop=4, ImageType='MNIST',
                    mnist_path=os.path.join(FLAGS.work_dir, data + '.npz'),
                    LOG_PATH=os.path.join(folder, 'logs'), MODEL_PATH=os.path.join(folder, 'models'),
                    PLOT_PATH=os.path.join(folder, 'plot'))
    settings.update(RECIPES[name])
    return config.TrainConfig(**settings)


def scores_path(config):
    """Where a run keeps its FIDs by epoch."""
    return os.path.join(config.LOG_PATH, 'recipe_fid.json')


class Scores(hooks.Hook):
    """After every epoch, the FID of the sampled generator's 1,000 samples against each
    reference, kept by epoch in recipe_fid.json beside the run's CSV log: {"1": {"training": ...,
    "held-out": ...}, ...}. The lowest training-set FID's epoch is the one --eval_every's best/
    would keep (it compares with the training images). A conditional generator draws 100 of each
    digit, and the share the classifier reads as the digit asked for is kept as "accuracy"."""

    def __init__(self, extractor, references):
        self.extractor, self.references = extractor, references

    def on_epoch_end(self, run, epoch, means):
        fake, probabilities, _ = metrics.generated_features(
            self.extractor, run.sampler(), SAMPLES, run.seed, condition=run.condition)
        path = scores_path(run.config)
        scores = {}
        if os.path.isfile(path):
            with open(path) as f:
                scores = json.load(f)
        scores[str(epoch + 1)] = {side: metrics.fid(None, fake, (reference.mu, reference.sigma))
                                  for side, reference in self.references.items()}
        if run.condition is not None:  # the classes the samples were drawn for
            asked = run.condition.balanced(SAMPLES).argmax(axis=1)
            scores[str(epoch + 1)]['accuracy'] = float(np.mean(probabilities.argmax(1) == asked))
        files.write_json(path, scores)


def train_all(extractor, references):
    """Train (or resume) every run asked for, each scored after every epoch."""
    for data in FLAGS.datasets:
        for name in FLAGS.recipes:
            for seed in map(int, FLAGS.seeds):
                logging.info('recipe %s on %s, seed %d', name, data, seed)
                trainer.train(run_config(name, data, seed), [Scores(extractor, references)])


def results():
    """{(dataset, recipe): {'training': [FID per epoch of each finished seed], 'held-out': ...}}."""
    found = {}
    for data in FLAGS.datasets:
        for name in FLAGS.recipes:
            for seed in map(int, FLAGS.seeds):
                path = scores_path(run_config(name, data, seed))
                if not os.path.isfile(path):
                    continue
                with open(path) as f:
                    scores = json.load(f)
                if len(scores) < FLAGS.epochs:
                    continue
                runs = found.setdefault((data, name), {'training': [], 'held-out': []})
                for side in ('training', 'held-out'):
                    runs[side].append([scores[str(e)][side] for e in range(1, FLAGS.epochs + 1)])
                if 'accuracy' in scores['1']:  # a conditional recipe's
                    runs.setdefault('accuracy', []).append(
                        [scores[str(e)]['accuracy'] for e in range(1, FLAGS.epochs + 1)])
    return found


def pytorch_results(extractor, references):
    """{(dataset, 'pytorch/examples' or 'pytorch/examples+ema'): FIDs as results() has them} of
    --pytorch_samples (one npz per seed, named {dataset}_s{seed}.npz)."""
    found = {}
    for path in FLAGS.pytorch_samples:
        data = os.path.basename(path).rsplit('_s', 1)[0]
        with np.load(path) as samples:
            for kind, name in (('raw', 'pytorch/examples'), ('ema', 'pytorch/examples+ema')):
                features = [extractor(iter([samples[kind + str(e)].astype(np.float32)]), SAMPLES,
                                      '{} epoch {}'.format(name, e))[0]
                            for e in range(1, FLAGS.epochs + 1)]
                runs = found.setdefault((data, name), {'training': [], 'held-out': []})
                for side, reference in references.items():
                    runs[side].append([metrics.fid(None, f, (reference.mu, reference.sigma))
                                       for f in features])
    return found


def nearest_report(digits):
    """Print, for each finished seed-1 run on the digits, the pixel distance of 1,000 samples (as
    many of each digit for a conditional one) to their nearest training digit, beside the
    held-out digits' own: samples much nearer than real unseen digits are copies."""
    import keras
    train = digits[:digit_features.TRAINED].reshape(digit_features.TRAINED, -1)

    def nearest(x):
        d2 = (x ** 2).sum(1)[:, None] + (train ** 2).sum(1)[None] - 2 * x @ train.T
        return np.sqrt(np.maximum(d2.min(axis=1), 0))

    held = nearest(digits[digit_features.TRAINED:].reshape(len(digits) - len(train), -1))
    close = np.percentile(held, 5)
    print('\nDistance to the nearest training digit (pixels in [-1, 1], 32x32): held-out real '
          'digits median {:.2f}, 5th percentile {:.2f}\n'.format(np.median(held), close))
    print('| recipe | median | 5th percentile | share nearer than 95% of held-out digits |')
    print('| --- | ---: | ---: | ---: |')
    for name in FLAGS.recipes:
        path = run_config(name, 'digits', 1)
        path = os.path.join(path.MODEL_PATH, path.save_name, 'generator.keras')
        if not os.path.isfile(path):
            continue
        generator = keras.models.load_model(path, compile=False)
        condition = conditions.Condition(conditions.CLASS, tuple('0123456789'))
        fake, _, _ = metrics.generated_features(
            metrics.FeatureExtractor(keras.Sequential([keras.Input([32, 32, 1]),
                                                       keras.layers.Flatten()]), 'pixels'),
            generator, SAMPLES, 1, condition=condition if len(generator.inputs) == 2 else None)
        distance = nearest(fake)
        print('| {} | {:.2f} | {:.2f} | {:.3f} |'.format(name, np.median(distance),
                                                         np.percentile(distance, 5),
                                                         np.mean(distance < close)))


def report(found, floors):
    """Print the Markdown table of final and best FID against both references, mean +- std over
    seeds, and the held-out FID as a multiple of its floor; returns it as a dict."""
    print('\nFID in the digit classifier\'s features, {} samples, mean +- std over seeds, after {} '
          'epochs; floors (real digits scored as samples): held-out {:.2f}, training {:.2f}\n'
          .format(SAMPLES, FLAGS.epochs, floors['held-out'], floors['training']))
    print('| dataset | recipe | seeds | held-out: final | best | final / floor | best / floor '
          '| training: final | best |')
    print('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    summary = {}
    for (data, name), runs in found.items():
        entry = {'seeds': len(runs['held-out'])}
        cells = []
        for side in ('held-out', 'training'):
            fids = np.array(runs[side])
            final, best = fids[:, -1], fids.min(axis=1)
            entry[side] = {'final_mean': final.mean(), 'final_std': final.std(),
                           'best_mean': best.mean(), 'best_std': best.std(),
                           'final_over_floor': (final / floors[side]).tolist(),
                           'best_epoch': (fids.argmin(axis=1) + 1).tolist(),
                           'fid_per_epoch_mean': fids.mean(axis=0).tolist()}
            cells += ['{:.1f} ± {:.1f}'.format(final.mean(), final.std()),
                      '{:.1f} ± {:.1f}'.format(best.mean(), best.std())]
            if side == 'held-out':
                cells += ['{:.2f}'.format(final.mean() / floors[side]),
                          '{:.2f}'.format(best.mean() / floors[side])]
        summary['{}/{}'.format(data, name)] = entry
        print('| {} | {} | {} | {} |'.format(data, name, entry['seeds'], ' | '.join(cells)))
    conditional = [(key, runs['accuracy']) for key, runs in found.items() if 'accuracy' in runs]
    if conditional:
        print('\nConditional recipes: the share of samples (100 of each digit) that the classifier '
              'reads as the digit asked for, mean +- std over seeds\n')
        print('| dataset | recipe | final | per seed | epoch 5 | epoch 10 |')
        print('| --- | --- | ---: | --- | ---: | ---: |')
        for (data, name), accuracy in conditional:
            accuracy = np.array(accuracy)
            summary['{}/{}'.format(data, name)]['accuracy'] = {
                'final_mean': accuracy[:, -1].mean(), 'final_std': accuracy[:, -1].std(),
                'per_epoch_mean': accuracy.mean(axis=0).tolist()}
            print('| {} | {} | {:.3f} ± {:.3f} | {} | {:.3f} | {:.3f} |'.format(
                data, name, accuracy[:, -1].mean(), accuracy[:, -1].std(),
                ', '.join('{:.3f}'.format(a) for a in accuracy[:, -1]),
                accuracy[:, 4].mean(), accuracy[:, 9].mean()))
    return summary


def draw(found, floors, path):
    """Held-out FID per epoch, mean over seeds with the spread shaded, one panel per dataset."""
    plt = utils.pyplot()
    datasets = sorted({data for data, _ in found}, reverse=True)
    names = list(dict.fromkeys(name for _, name in found))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), dpi=100,
                             squeeze=False)
    for ax, data in zip(axes[0], datasets):
        for index, name in enumerate(names):
            if (data, name) not in found:
                continue
            runs = np.array(found[(data, name)]['held-out'])
            epochs = np.arange(1, runs.shape[1] + 1)
            # a recipe has the same colour and line in both panels; past 10 colours, dashed
            color, line = 'C{}'.format(index % 10), '-' if index < 10 else '--'
            ax.plot(epochs, runs.mean(axis=0), color=color, linestyle=line,
                    label='{} ({} seed{})'.format(name, len(runs), 's' if len(runs) > 1 else ''))
            ax.fill_between(epochs, runs.min(axis=0), runs.max(axis=0), alpha=0.15, color=color)
        ax.axhline(floors['held-out'], color='grey', linestyle=':', label='real digits (floor)')
        ax.set_yscale('log')
        ax.set_title('{}: {} training digits'.format(
            data, '1,500' if data == 'digits' else '300 of the 1,500'))
        ax.set_xlabel('epoch (47 steps of 32)')
        ax.set_ylabel('FID against 297 held-out digits')
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
        accuracy = digit_features.train_classifier(classifier)
        logging.info('digit classifier: %.1f%% right on the held-out digits', 100 * accuracy)
    for data, (count, repeats) in DATASETS.items():
        path = os.path.join(FLAGS.work_dir, data + '.npz')
        if not os.path.isfile(path):
            digits_npz(path, count, repeats)
        # the same images at 32 px for tools/pytorch_dcgan.py
        out = os.path.join(FLAGS.work_dir, data + '_32px.npz')
        if not os.path.isfile(out):
            images = dataset.load_mnist(path, digit_features.SIZE).as_numpy_iterator()
            np.savez(out, images=np.stack(list(images)))
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(classifier))
    digits, _ = digit_features.digits_and_labels()
    real, _ = extractor(iter([digits]), len(digits), 'real digits')
    trained, held_out = real[:digit_features.TRAINED], real[digit_features.TRAINED:]
    references = {'training': metrics.Reference(trained, origin='the 1,500 training digits'),
                  'held-out': metrics.Reference(held_out, origin='the 297 held-out digits')}
    # what drawing real digits scores: 1,000 training digits against the held-out ones, and the
    # held-out digits against the training ones
    chosen = np.random.default_rng(0).permutation(len(trained))[:SAMPLES]
    floors = {'held-out': metrics.fid(held_out, trained[chosen]),
              'training': metrics.fid(trained, held_out)}
    if not FLAGS.report:
        train_all(extractor, references)
    found = {**results(), **pytorch_results(extractor, references)}
    summary = report(found, floors)
    if FLAGS.nearest:
        nearest_report(digits)
    figure = FLAGS.figure or os.path.join(FLAGS.work_dir, 'recipes.png')
    if found:
        draw(found, floors, figure)
    with open(os.path.join(FLAGS.work_dir, 'summary.json'), 'w') as f:
        json.dump({'floors': floors, 'epochs': FLAGS.epochs, 'filters': FLAGS.filters,
                   'samples': SAMPLES, 'runs': summary}, f, indent=1)
    print('\nwrote {} and {}'.format(figure, os.path.join(FLAGS.work_dir, 'summary.json')))


if __name__ == '__main__':
    app.run(main)
