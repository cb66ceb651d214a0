"""Losses, sample grids, the CSV loss log and plots, shared by the entry points."""
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

CSV_COLUMNS = ('epoch', 'Real_P', 'Fake_P', 'Gen_loss', 'Dis_loss')
CSV_HEADER = ','.join(CSV_COLUMNS) + '\n'
CSV_FORMAT = '{:5d},{:.6f},{:.6f},{:.6f},{:.6f}\n'


class UsageError(Exception):
    """A mistake the user can fix; entry points print its message and exit non-zero."""


def fail(message):
    """Print a user error in one line and exit with status 1 (for entry points)."""
    print('ERROR: {}'.format(message), file=sys.stderr)
    sys.exit(1)


def check_writable(folder):
    """Create folder if needed and make sure files can be written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError('cannot write to {} ({}): choose another folder or fix its '
                         'permissions.'.format(folder, e.strerror or e))


# ----------------------------------------------------------------------------- losses

# per-example BCE on probabilities, as the seed's BinaryCrossentropy; averaged below
cross_entropy = keras.losses.BinaryCrossentropy(reduction=None)


def discriminator_loss(real_output, fake_output, global_batch_size):
    """The seed's D loss, BCE(1, D(x)) + BCE(0, D(G(z))), averaged over the global batch."""
    per_example = (cross_entropy(tf.ones_like(real_output), real_output)
                   + cross_entropy(tf.zeros_like(fake_output), fake_output))
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def generator_loss(fake_output, global_batch_size):
    """The seed's G loss, BCE(1, D(G(z))), averaged over the global batch."""
    per_example = cross_entropy(tf.ones_like(fake_output), fake_output)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def lr_schedule(lr, steps_per_epoch, decay_epochs=(10, 20, 25)):
    """The seed's piecewise-constant decay: lr, then /10 after each of decay_epochs.

    The optimizer evaluates the schedule at its update count before incrementing it, and
    PiecewiseConstantDecay keeps a value up to and including its boundary, hence the -1.
    """
    boundaries = [steps_per_epoch * e - 1 for e in decay_epochs]
    values = [lr / 10 ** i for i in range(len(decay_epochs) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# ----------------------------------------------------------------------------- images

def to_uint8(images):
    """Images in [-1, 1] (numpy or tensor) -> uint8 numpy array in [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, rows, cols, pad=2, pad_value=255):
    """Tile [rows*cols, H, W, C] uint8 images into one [rows*H+..., cols*W+..., C] image."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    if n != rows * cols:
        raise ValueError('make_grid needs {} images, got {}'.format(rows * cols, n))
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c),
                   pad_value, dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def write_png(path, image):
    """Write a uint8 [H, W, 1 or 3] array as a grayscale or RGB PNG."""
    tf.io.write_file(path, tf.io.encode_png(image))


def generate_and_save_images(predictions, epoch, save_dir):
    """Save the 16 fixed-noise samples of an epoch as a 4x4 grid {save_dir}/{epoch:03d}.png."""
    os.makedirs(save_dir, exist_ok=True)
    grid = make_grid(to_uint8(predictions), 4, 4)
    path = os.path.join(save_dir, '{:03d}.png'.format(epoch))
    write_png(path, grid)
    return path, grid


# ----------------------------------------------------------------------------- CSV log

def read_loss_csv(path):
    """Read a loss CSV into {column: np.ndarray}, up to its last complete row."""
    if not os.path.isfile(path):
        raise UsageError('{} does not exist: pass a loss CSV written by main.py '
                         '(logs/{{SaveName}}-loss.csv).'.format(path))
    with open(path) as f:
        text = f.read()
    lines = text.split('\n')
    if not lines[0].strip():
        raise UsageError('{} is empty: it has no header; was the run started?'.format(path))
    if lines[0].strip() != CSV_HEADER.strip():
        raise UsageError('{} has header "{}", expected "{}": is it a loss CSV from '
                         'main.py?'.format(path, lines[0].strip(), CSV_HEADER.strip()))
    # the last piece has no newline: a row still being written, or '' after a complete file
    rows = []
    for number, line in enumerate(lines[1:-1], start=2):
        fields = line.split(',')
        try:
            if len(fields) != len(CSV_COLUMNS):
                raise ValueError
            rows.append([int(fields[0])] + [float(v) for v in fields[1:]])
        except ValueError:
            raise UsageError('{} line {} is not a row of {} numbers: "{}"'.format(
                path, number, len(CSV_COLUMNS), line))
    table = np.array(rows, dtype=np.float64).reshape(-1, len(CSV_COLUMNS))
    out = {name: table[:, i] for i, name in enumerate(CSV_COLUMNS)}
    out['epoch'] = out['epoch'].astype(np.int64)
    return out


def start_csv(path, keep_epochs):
    """Open the loss CSV for a run that starts at epoch keep_epochs (0 = fresh), dropping later rows."""
    kept = []
    if keep_epochs > 0 and os.path.isfile(path):
        with open(path) as f:
            lines = f.read().split('\n')
        if lines and lines[0].strip() == CSV_HEADER.strip():
            for line in lines[1:-1]:
                fields = line.split(',')
                if len(fields) == len(CSV_COLUMNS) and int(fields[0]) < keep_epochs:
                    kept.append(line + '\n')
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(CSV_HEADER)
        f.writelines(kept)
    os.replace(tmp, path)
    return len(kept)


def append_csv(path, epoch, values):
    """Append one epoch's row (Real_P, Fake_P, Gen_loss, Dis_loss) to the loss CSV."""
    with open(path, 'a') as f:
        f.write(CSV_FORMAT.format(epoch, *[float(v) for v in values]))
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- plots

def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no screen needed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_runs(tables, names, losses_path, probs_path):
    """Write the loss and discriminator-probability line plots of one or more loss CSVs."""
    plt = pyplot()
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
        fig.savefig(path)
        plt.close(fig)


def show_grid(images, rows, cols, path, title, labels=None):
    """Save uint8 images [rows*cols, H, W, C] as a titled PNG grid, optionally labelling each tile."""
    plt = pyplot()
    images = np.asarray(images)
    grid = make_grid(images, rows, cols)
    h, w = images.shape[1:3]
    scale = max(1.0, 96.0 / max(h, w))  # tiles at least ~1 inch at 96 dpi
    fig = plt.figure(figsize=(grid.shape[1] * scale / 96, grid.shape[0] * scale / 96 + 0.5), dpi=96)
    ax = fig.add_axes([0, 0, 1, grid.shape[0] * scale / 96 / fig.get_figheight()])
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap='gray', vmin=0, vmax=255,
              interpolation='nearest')
    ax.axis('off')
    for i, label in enumerate(labels or []):
        r, c = divmod(i, cols)
        ax.text(2 + c * (w + 2) + 1, 2 + r * (h + 2) + 1, label, color='yellow', fontsize=8,
                va='top', ha='left', bbox=dict(facecolor='black', alpha=0.5, pad=1, linewidth=0))
    fig.suptitle(title, fontsize=11, y=1 - 0.1 / fig.get_figheight())
    fig.savefig(path)
    plt.close(fig)


def write_gif(frame_paths, path, labels, seconds_per_frame=0.3, min_width=256):
    """Animate PNG grids into a looping GIF, each frame labelled (e.g. 'epoch 3')."""
    from PIL import Image, ImageDraw, ImageFont
    frames = []
    for frame_path, label in zip(frame_paths, labels):
        with Image.open(frame_path) as img:
            img = img.convert('RGB')
        factor = max(1, -(-min_width // img.width))  # whole-pixel upscaling keeps it sharp
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
        frame = Image.new('RGB', (img.width, img.height + 24), 'white')
        frame.paste(img, (0, 24))
        ImageDraw.Draw(frame).text((6, 4), label, fill='black', font=ImageFont.load_default(16))
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], loop=0,
                   duration=int(seconds_per_frame * 1000))


# ----------------------------------------------------------------------------- latent space

def slerp(z0, z1, t):
    """Spherical interpolation between latents z0 and z1 at fractions t (DCGAN-style latent walks)."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    cos = np.dot(z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:  # (anti)parallel: fall back to a straight line
        out = (1 - t) * z0 + t * z1
    else:
        out = (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)
    out[0], out[-1] = z0, z1  # the endpoints are exactly the given latents
    return out.astype(np.float32)


def parse_arithmetic(expression, n_samples):
    """'A-B+C' with comma-separated sample indices per group -> three index lists (B may be empty)."""
    try:
        a_part, rest = expression.split('-', 1)
        b_part, c_part = rest.split('+', 1)
        groups = [[int(i) for i in part.split(',') if i.strip()] for part in (a_part, b_part, c_part)]
    except ValueError:
        raise UsageError('--arithmetic={} is not A-B+C with comma-separated sample indices, e.g. '
                         '--arithmetic=3,7,12-1,4,9+0,5,6'.format(expression))
    if not groups[0] or not groups[2]:
        raise UsageError('--arithmetic={}: groups A and C need at least one index each.'.format(
            expression))
    bad = [i for g in groups for i in g if not 0 <= i < n_samples]
    if bad:
        raise UsageError('--arithmetic={}: indices {} are outside the grid of {} samples (0 to {}); '
                         'use the indices shown on the grid made with the same --seed.'.format(
                             expression, bad, n_samples, n_samples - 1))
    if len(groups[0]) - len(groups[1]) + len(groups[2]) <= 0:
        raise UsageError('--arithmetic={}: B has more samples than A and C together.'.format(
            expression))
    return groups


def arithmetic_latents(z, groups):
    """Latent means of A, B and C and their combination (sum A - sum B + sum C) / (|A|-|B|+|C|).

    For groups of equal size, as in the DCGAN paper, this is mean(A) - mean(B) + mean(C).
    """
    a, b, c = [z[g] for g in groups]
    means = [g.mean(axis=0) if len(g) else np.zeros(z.shape[1], z.dtype) for g in (a, b, c)]
    result = (a.sum(0) - b.sum(0) + c.sum(0)) / (len(a) - len(b) + len(c))
    return np.stack(means + [result]).astype(np.float32)
