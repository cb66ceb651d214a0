"""Plot loss CSVs (losses and D's probabilities, several runs overlaid) and animate sample grids."""
import glob
import os

from absl import app
from absl import flags

import utils
from utils import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string('out_dir', 'plots/', 'folder for the PNG plots and GIFs (default plots/)')
flags.DEFINE_string('name', '', 'file-name prefix of the plots; default: the SaveName of a single '
                    'CSV, "comparison" for several')
flags.DEFINE_boolean('gif', False, 'also animate {PLOT_PATH}/{SaveName}/*.png into '
                     '{out_dir}/{SaveName}.gif, one labelled frame per epoch (default False)')
flags.DEFINE_string('PLOT_PATH', 'plot/', 'folder holding the per-epoch sample grids (default plot/)')
flags.DEFINE_float('frame_seconds', 0.3, 'GIF frame duration in seconds (default 0.3)')


def save_name_of(csv_path):
    """SaveName of a loss CSV: logs/MNIST-False-loss.csv -> MNIST-False."""
    base = os.path.basename(csv_path)
    return base[:-len('-loss.csv')] if base.endswith('-loss.csv') else os.path.splitext(base)[0]


def main(argv):
    paths = argv[1:]
    try:
        if not paths:
            raise UsageError('give one or more loss CSVs, e.g. python plot_logs.py '
                             'logs/MNIST-False-loss.csv')
        tables = [utils.read_loss_csv(p) for p in paths]
        for path, table in zip(paths, tables):
            if not len(table['epoch']):
                raise UsageError('{} has no complete rows yet: wait for the first epoch to '
                                 'finish.'.format(path))
        names = [save_name_of(p) for p in paths]
        if len(set(names)) < len(names):  # the same SaveName from several runs: tell them apart
            names = [os.path.splitext(p)[0] for p in paths]
        prefix = FLAGS.name or (names[0] if len(paths) == 1 else 'comparison')
        utils.check_writable(FLAGS.out_dir)
        losses = os.path.join(FLAGS.out_dir, prefix + '-losses.png')
        probs = os.path.join(FLAGS.out_dir, prefix + '-probabilities.png')
        utils.plot_runs(tables, names, losses, probs)
        print('wrote {} and {}'.format(losses, probs))
        if FLAGS.gif:
            for name in sorted({save_name_of(p) for p in paths}):
                frames = sorted(glob.glob(os.path.join(FLAGS.PLOT_PATH, name, '[0-9][0-9][0-9].png')))
                if not frames:
                    raise UsageError('no sample grids in {}: pass --PLOT_PATH as given to '
                                     'main.py.'.format(os.path.join(FLAGS.PLOT_PATH, name)))
                gif = os.path.join(FLAGS.out_dir, name + '.gif')
                labels = ['{} epoch {}'.format(name, int(os.path.basename(f)[:3])) for f in frames]
                utils.write_gif(frames, gif, labels, FLAGS.frame_seconds)
                print('wrote {} ({} frames)'.format(gif, len(frames)))
    except UsageError as e:
        utils.fail(e)


if __name__ == '__main__':
    app.run(main)
