"""Plot loss CSVs (losses and D's probabilities, several runs overlaid), the eval CSVs beside them
(FID, KID, precision and recall), and animate sample grids."""
import os

import interrupts

interrupts.guard_start_up()
import numpy as np  # noqa: E402
from absl import app  # noqa: E402

import config  # noqa: E402
import csv_log  # noqa: E402
import errors  # noqa: E402
from errors import UsageError  # noqa: E402
import files  # noqa: E402
from run_files import RunFiles  # noqa: E402
import utils  # noqa: E402

config.define_flags(config.PlotConfig, __name__)


def plot_runs(tables, names, losses_path, probs_path):
    """Write the loss and discriminator-probability line plots of one or more loss CSVs."""
    plt = utils.pyplot()
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    panels = [(losses_path, ('Gen_loss', 'Dis_loss'), 'Generator and discriminator loss', 'loss'),
              (probs_path, ('Real_P', 'Fake_P'), 'Mean discriminator output on real and fake '
               'images', 'D(x)')]
    for path, columns, title, ylabel in panels:
        fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
        for i, (table, name) in enumerate(zip(tables, names)):
            epochs = table['epoch'] + 1  # numbered like the sample grids
            for column, style in zip(columns, ('-', '--')):
                label = column if len(tables) == 1 else '{} {}'.format(name, column)
                ax.plot(epochs, table[column], style, color=colours[i % len(colours)],
                        marker='o' if len(epochs) < 40 else None, markersize=3, label=label)
        if ylabel == 'D(x)':
            ax.axhline(0.5, color='grey', linewidth=1, linestyle=':', label='equilibrium 0.5')
            ax.set_ylim(0, 1)
        ax.set_title(title if len(tables) > 1 else '{}: {}'.format(names[0], title))
        ax.set_xlabel('epoch')
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with files.saving('a plot', path) as tmp, files.open_file(tmp, 'wb') as f:
            fig.savefig(f, format='png')
        plt.close(fig)


def plot_eval(tables, names, path):
    """Write the evaluation plot of one or more eval CSVs: FID and KID, precision and recall."""
    plt = utils.pyplot()
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), dpi=100, sharex=True)
    kid_axis = top.twinx()
    for i, (table, name) in enumerate(zip(tables, names)):
        epochs, colour = table['epoch'] + 1, colours[i % len(colours)]
        label = '' if len(tables) == 1 else name + ' '
        top.plot(epochs, table['FID'], '-o', color=colour, markersize=3, label=label + 'FID')
        kid_axis.plot(epochs, table['KID'], ':s', color=colour, markersize=3, label=label + 'KID')
        best = int(np.argmin(table['FID']))
        top.annotate('best {:.2f}'.format(table['FID'][best]), (epochs[best], table['FID'][best]),
                     textcoords='offset points', xytext=(0, 8), ha='center', color=colour)
        bottom.plot(epochs, table['precision'], '-o', color=colour, markersize=3,
                    label=label + 'precision')
        bottom.plot(epochs, table['recall'], '--s', color=colour, markersize=3,
                    label=label + 'recall')
    top.set_title('Image quality during training' if len(tables) > 1 else
                  '{}: image quality during training'.format(names[0]))
    top.set_ylabel('FID (lower is better)')
    kid_axis.set_ylabel('KID (lower is better)')
    lines = top.get_legend_handles_labels()
    extra = kid_axis.get_legend_handles_labels()
    top.legend(lines[0] + extra[0], lines[1] + extra[1])
    bottom.set_ylabel('precision, recall (k = 3)')
    bottom.set_ylim(0, 1.02)
    bottom.set_xlabel('epoch')
    bottom.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    bottom.legend()
    fig.tight_layout()
    with files.saving('a plot', path) as tmp, files.open_file(tmp, 'wb') as f:
        fig.savefig(f, format='png')
    plt.close(fig)


def write_gif(frame_paths, path, labels, seconds_per_frame=0.3, min_width=256):
    """Animate PNG grids into a looping GIF, each frame labelled (e.g. 'epoch 3')."""
    from PIL import Image, ImageDraw, ImageFont
    frames = []
    for frame_path, label in zip(frame_paths, labels):
        with files.open_file(frame_path, 'rb') as f, Image.open(f) as img:  # (read by files)
            img = img.convert('RGB')
        factor = max(1, -(-min_width // img.width))  # whole-pixel upscaling keeps it sharp
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
        frame = Image.new('RGB', (img.width, img.height + 24), 'white')
        frame.paste(img, (0, 24))
        ImageDraw.Draw(frame).text((6, 4), label, fill='black', font=ImageFont.load_default(16))
        frames.append(frame)
    with files.saving('the GIF', path) as tmp, files.open_file(tmp, 'wb') as f:
        frames[0].save(f, format='GIF', save_all=True, append_images=frames[1:], loop=0,
                       duration=int(seconds_per_frame * 1000))


def plot_logs(paths, out_dir, name='', gif=False, plot_path='plot/', frame_seconds=0.3):
    """Plot the loss CSVs at paths into out_dir (and GIFs of their grids); returns the files written."""
    if not paths:
        raise UsageError('give one or more loss CSVs, e.g. python plot_logs.py '
                         'logs/MNIST-False-loss.csv')
    tables = [csv_log.read_loss_csv(p) for p in paths]
    runs = [RunFiles.of_loss_csv(p, plot_path) for p in paths]
    for path, table in zip(paths, tables):
        if not len(table['epoch']):
            raise UsageError('{} has no complete rows yet: wait for the first epoch to '
                             'finish.'.format(path))
    names = [run.save_name for run in runs]
    if len(set(names)) < len(names):  # the same SaveName from several runs: tell them apart
        names = [os.path.splitext(p)[0] for p in paths]
    prefix = name or (names[0] if len(paths) == 1 else 'comparison')
    files.check_writable(out_dir)
    written = [os.path.join(out_dir, prefix + '-losses.png'),
               os.path.join(out_dir, prefix + '-probabilities.png')]
    plot_runs(tables, names, *written)
    evaluated = [(csv_log.read_csv(run.eval_csv, csv_log.EVAL_COLUMNS), n)
                 for run, n, p in zip(runs, names, paths)
                 if p.endswith('-loss.csv') and files.isfile(run.eval_csv)]
    evaluated = [(table, n) for table, n in evaluated if len(table['epoch'])]
    if evaluated:
        written.append(os.path.join(out_dir, prefix + '-eval.png'))
        plot_eval(*zip(*evaluated), written[-1])
    if gif:
        for run in sorted({run.save_name: run for run in runs}.values(), key=lambda r: r.save_name):
            frames = files.glob(run.grid_pattern)
            if not frames:
                raise UsageError('no sample grids in {}: pass --PLOT_PATH as given to '
                                 'main.py.'.format(run.plot_dir))
            written.append(os.path.join(out_dir, run.save_name + '.gif'))
            labels = ['{} epoch {}'.format(run.save_name, int(os.path.basename(f)[:3]))
                      for f in frames]
            write_gif(frames, written[-1], labels, frame_seconds)
    return written


@errors.entry_point(positional=True)
def main(argv):
    settings = config.from_flags(config.PlotConfig)
    for path in plot_logs([files.expand_path(a) for a in argv[1:]], settings.out_dir,
                          settings.name, settings.gif, settings.PLOT_PATH, settings.frame_seconds):
        print('wrote {}'.format(path))


if __name__ == '__main__':
    app.run(main)
